"""Several cameras, one engine: the perception node serving a head and a wrist camera, fed here by two
replay_node streams (camera stand-ins).

    ros2 launch actiseg_ros multi_camera.launch.py
    ros2 launch actiseg_ros multi_camera.launch.py namespace:=robot1 rate:=15.0

The node runs with the parameter cameras = [head, wrist]: it subscribes head/image_raw and wrist/image_raw
and publishes ~/head/mask, ~/head/labels, ~/head/objects, ~/head/overlay and the same under ~/wrist/ (at the
root namespace /actiseg/head/mask, ...), with one model and one inference engine; frames of both cameras that
wait together run as one batch. replay_head publishes a synthetic stream on head/image_raw and the scripted
actions on actiseg/action (the node's ~/action); replay_wrist a second stream (another seed) on
wrist/image_raw. With real cameras, leave the replays out and remap the inputs, e.g.
`remappings=[('head/image_raw', '/head_camera/color/image_raw')]` on the perception node.

Arguments: namespace, config_file, backend, model_dir, rate (Hz of each replay stream), fastdds_profile.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory('actiseg_ros')
    namespace = LaunchConfiguration('namespace')
    config_file = LaunchConfiguration('config_file')
    backend = LaunchConfiguration('backend')
    model_dir = LaunchConfiguration('model_dir')
    rate = LaunchConfiguration('rate')
    fastdds_profile = LaunchConfiguration('fastdds_profile')

    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='',
                              description="namespace of the nodes and their topics ('' = the one in force)"),
        DeclareLaunchArgument('config_file', default_value=os.path.join(share, 'config', 'perception.yaml'),
                              description='node parameters YAML (keyed /** so it applies under any namespace)'),
        DeclareLaunchArgument('backend', default_value='auto',
                              description='inference backend: auto, tensorrt, ort-tensorrt, ort-cuda or ort-cpu'),
        DeclareLaunchArgument('model_dir', default_value='',
                              description="exported model folder; '' = the installed models/default"),
        DeclareLaunchArgument('rate', default_value='15.0', description='frames per second of each camera stream'),
        DeclareLaunchArgument('fastdds_profile',
                              default_value=EnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                                                                default_value=os.path.join(share, 'config',
                                                                                           'fastdds_shm.xml')),
                              description='Fast DDS XML profile for every node. Default: the value of '
                                          'FASTDDS_DEFAULT_PROFILES_FILE when that is set; when it is unset, the '
                                          'shipped config/fastdds_shm.xml (32 MiB shared memory, so camera-sized '
                                          'images are not dropped)'),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', fastdds_profile),
        Node(
            package='actiseg_ros',
            executable='perception_node',
            name='actiseg',
            namespace=namespace,
            output='screen',
            parameters=[config_file, {'backend': backend, 'model_dir': model_dir, 'cameras': ['head', 'wrist']}],
        ),
        # The head stream also sends the actions of its script (to actiseg/action, the node's ~/action).
        Node(
            package='actiseg_ros',
            executable='replay_node',
            name='replay_head',
            namespace=namespace,
            output='screen',
            parameters=[{'source': 'synthetic', 'seed': 0, 'rate': rate, 'loop': True, 'frame_id': 'head',
                         'action_script': ['auto']}],
            remappings=[('camera/image_raw', 'head/image_raw')],
        ),
        Node(
            package='actiseg_ros',
            executable='replay_node',
            name='replay_wrist',
            namespace=namespace,
            output='screen',
            parameters=[{'source': 'synthetic', 'seed': 1, 'rate': rate, 'loop': True, 'frame_id': 'wrist',
                         'action_script': ['']}],
            remappings=[('camera/image_raw', 'wrist/image_raw')],
        ),
    ])
