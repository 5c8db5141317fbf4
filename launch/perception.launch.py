"""Launch the actiseg perception node (and optionally the replay node as a camera stand-in).

    ros2 launch actiseg_ros perception.launch.py
    ros2 launch actiseg_ros perception.launch.py image_topic:=/camera/color/image_raw backend:=ort-cuda
    ros2 launch actiseg_ros perception.launch.py namespace:=robot1 use_replay:=true

Arguments: namespace, image_topic, config_file, backend, model_dir, use_replay, fastdds_profile (default: your
FASTDDS_DEFAULT_PROFILES_FILE when set, otherwise the shipped 32 MiB shared-memory profile).
Topic names are relative, so `namespace` (or including this file under PushRosNamespace) moves every topic:
namespace robot1 gives /robot1/camera/image_raw in and /robot1/actiseg/mask, ... out. The shipped params
file is keyed `/**`, so it applies under any namespace.
Plain launch / launch_ros API only, so it runs on every ROS 2 distribution from Humble on.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory('actiseg_ros')
    namespace = LaunchConfiguration('namespace')
    image_topic = LaunchConfiguration('image_topic')
    config_file = LaunchConfiguration('config_file')
    backend = LaunchConfiguration('backend')
    model_dir = LaunchConfiguration('model_dir')
    use_replay = LaunchConfiguration('use_replay')
    fastdds_profile = LaunchConfiguration('fastdds_profile')

    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='',
                              description="namespace of both nodes and their topics ('' = the one in force, e.g. "
                                          "from PushRosNamespace; robot1 -> /robot1/actiseg, "
                                          "/robot1/camera/image_raw)"),
        DeclareLaunchArgument('image_topic', default_value='camera/image_raw',
                              description='camera topic (sensor_msgs/Image) the node segments; a relative name '
                                          'is resolved in the namespace'),
        DeclareLaunchArgument('config_file', default_value=os.path.join(share, 'config', 'perception.yaml'),
                              description='node parameters YAML (keyed /** so it applies under any namespace)'),
        DeclareLaunchArgument('backend', default_value='auto',
                              description='inference backend: auto, tensorrt, ort-tensorrt, ort-cuda or ort-cpu'),
        DeclareLaunchArgument('model_dir', default_value='',
                              description="exported model folder; '' = the installed models/default"),
        DeclareLaunchArgument('use_replay', default_value='false',
                              description='also start replay_node (synthetic stream with scripted actions)'),
        DeclareLaunchArgument('fastdds_profile',
                              default_value=EnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                                                                default_value=os.path.join(share, 'config',
                                                                                           'fastdds_shm.xml')),
                              description='Fast DDS XML profile for both nodes. Default: the value of '
                                          'FASTDDS_DEFAULT_PROFILES_FILE when that is set; when it is unset, the '
                                          'shipped config/fastdds_shm.xml (32 MiB shared memory, so camera-sized '
                                          'images are not dropped)'),
        # Fast DDS reads the profile when each process creates its participant.
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', fastdds_profile),
        Node(
            package='actiseg_ros',
            executable='perception_node',
            name='actiseg',
            namespace=namespace,
            output='screen',
            parameters=[config_file, {'backend': backend, 'model_dir': model_dir}],
            remappings=[('camera/image_raw', image_topic)],
        ),
        Node(
            package='actiseg_ros',
            executable='replay_node',
            name='actiseg_replay',
            namespace=namespace,
            output='screen',
            parameters=[{'source': 'synthetic', 'rate': 30.0, 'loop': True, 'action_script': ['auto']}],
            remappings=[('camera/image_raw', image_topic)],
            condition=IfCondition(use_replay),
        ),
    ])
