"""perception_node: the `actiseg` lifecycle node. Camera frames + an action in, object masks out.

Topics (README.md, "The ROS 2 node", has the details):
  in   /camera/image_raw   sensor_msgs/Image   QoS parameter image_qos (sensor data by default)
  in   /actiseg/action     std_msgs/String     reliable, volatile, keep last
  out  /actiseg/mask       sensor_msgs/Image   mono8, 255 = any active object, camera resolution
  out  /actiseg/labels     sensor_msgs/Image   mono8, pixel = 1-based index into the objects list, 0 = none
  out  /actiseg/objects    std_msgs/String     JSON: stamp, action, per object id, name, score, active, bbox, area
  out  /actiseg/overlay    sensor_msgs/Image   bgr8, only while subscribed and publish_overlay is true
  out  /diagnostics        diagnostic_msgs/DiagnosticArray

Lifecycle: configure loads the model (a failure is logged and the transition fails; the node stays up,
unconfigured, so it can be fixed and configured again), activate subscribes to the camera and starts the
inference thread, deactivate stops both, cleanup frees the model. With the parameter autostart (default)
the node configures and activates itself.

This module only wires ROS callbacks to the plain helpers in actiseg_ros.ros.
"""
from __future__ import annotations

import sys
import time

from actiseg_ros.ros import params as node_params
from actiseg_ros.ros.action_parsing import ActionError
from actiseg_ros.ros.diagnostics import diagnostic_level
from actiseg_ros.ros.image_conversion import ImageConversionError, ImageConverter
from actiseg_ros.ros.latest_frame import FrameWorker, LatestFrameSlot
from actiseg_ros.ros.messages import diagnostics_msg, image_msg, objects_msg
from actiseg_ros.ros.overlay import draw_overlay
from actiseg_ros.ros.pipeline import ConfigureError, create_pipeline
from actiseg_ros.ros.qos import output_profile, profile
from actiseg_ros.ros.stats import OutputStats

NODE_NAME = "actiseg"
IMAGE_TOPIC = "/camera/image_raw"
ACTION_TOPIC = "/actiseg/action"
OUTPUT_TOPICS = {"mask": "/actiseg/mask", "labels": "/actiseg/labels", "objects": "/actiseg/objects",
                 "overlay": "/actiseg/overlay"}
DIAGNOSTICS_TOPIC = "/diagnostics"


def _stamp_nanoseconds(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def make_node_class():
    """The node class, built on first use so that importing this module needs no rclpy."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.msg import SetParametersResult
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    class PerceptionNode(LifecycleNode):
        def __init__(self, **kwargs):
            super().__init__(NODE_NAME, **kwargs)
            self.state_label = "unconfigured"
            self.configure_error = None
            values = node_params.declare_all(self)
            try:
                self.settings = node_params.make_settings(values)
            except ValueError as err:
                self.settings = None
                self.configure_error = str(err)
                self.get_logger().error("invalid parameters: %s" % err)
            self.pipeline = None
            self.converter = None
            self.outputs = {}
            self.image_sub = self.action_sub = None
            self.slot = self.worker = None
            self.stats = OutputStats()
            self.counters = {"received": 0, "dropped": 0, "refused": 0}
            self._earlier_slots = {"received": 0, "dropped": 0}  # counts of the slots of earlier activations
            self._reported = {"received": 0, "refused": 0}
            self.add_on_set_parameters_callback(self._on_set_parameters)
            self.diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
            period = self.settings.diagnostics_period if self.settings else 1.0
            self.create_timer(period, self._publish_diagnostics)

        # --- lifecycle ---------------------------------------------------------------------------------

        def on_configure(self, state):
            if self.settings is None:
                self.get_logger().error("configure failed: invalid parameters: %s" % self.configure_error)
                return TransitionCallbackReturn.FAILURE
            began = time.monotonic()
            try:
                self.pipeline = create_pipeline(self.settings)
            except ConfigureError as err:
                self.configure_error = str(err)
                self.get_logger().error("configure failed: %s" % err)
                return TransitionCallbackReturn.FAILURE
            self.configure_error = None
            self.converter = ImageConverter(self.settings.max_image_pixels, self.settings.use_cv_bridge)
            qos = output_profile(self.settings.output_qos)
            self.outputs = {
                "mask": self.create_lifecycle_publisher(Image, OUTPUT_TOPICS["mask"], qos),
                "labels": self.create_lifecycle_publisher(Image, OUTPUT_TOPICS["labels"], qos),
                "objects": self.create_lifecycle_publisher(String, OUTPUT_TOPICS["objects"], qos),
                "overlay": self.create_lifecycle_publisher(Image, OUTPUT_TOPICS["overlay"], qos),
            }
            # The action topic is heard from configure on, so an action sent before activation is not lost.
            self.action_sub = self.create_subscription(String, ACTION_TOPIC, self._on_action, profile("command"))
            predictor = self.pipeline.predictor
            self.get_logger().info("configured in %.1f s: model %s (input %dx%d), backend %s, image conversion %s"
                                   % (time.monotonic() - began, predictor.card.model_dir, predictor.card.input_hw[1],
                                      predictor.card.input_hw[0], predictor.backend, self.converter.name))
            self.state_label = "inactive"
            return super().on_configure(state)

        def on_activate(self, state):
            self.slot = LatestFrameSlot()
            self.worker = FrameWorker(self.slot, self._handle_frame, self._on_worker_error)
            self.worker.start()
            self.image_sub = self.create_subscription(Image, IMAGE_TOPIC, self._on_image,
                                                      profile(self.settings.image_qos))
            self.state_label = "active"
            self.get_logger().info("active: listening to %s (%s QoS)"
                                   % (self.image_sub.topic_name, self.settings.image_qos))
            return super().on_activate(state)

        def on_deactivate(self, state):
            self._stop_processing()
            self.state_label = "inactive"
            return super().on_deactivate(state)

        def on_cleanup(self, state):
            self._release()
            self.state_label = "unconfigured"
            return super().on_cleanup(state)

        def on_shutdown(self, state):
            self._stop_processing()
            self._release()
            self.state_label = "finalized"
            return super().on_shutdown(state)

        def _stop_processing(self):
            if self.image_sub is not None:
                self.destroy_subscription(self.image_sub)
                self.image_sub = None
            if self.worker is not None:
                self.worker.stop()
                self.worker = None
            if self.slot is not None:  # the next activation starts a fresh slot; keep the totals
                self._earlier_slots["received"] += self.slot.received
                self._earlier_slots["dropped"] += self.slot.dropped
                self.slot = None

        def _release(self):
            for publisher in self.outputs.values():
                self.destroy_lifecycle_publisher(publisher)
            self.outputs = {}
            if self.action_sub is not None:
                self.destroy_subscription(self.action_sub)
                self.action_sub = None
            if self.pipeline is not None:
                self.pipeline.predictor.close()
                self.pipeline = None

        # --- callbacks (executor thread): hand over and return ---------------------------------------

        def _on_image(self, msg):
            slot = self.slot
            if slot is not None:
                slot.put((msg, time.perf_counter(), self.get_clock().now().nanoseconds))

        def _on_action(self, msg):
            self._apply_action(msg.data)

        def _apply_action(self, text: str) -> str | None:
            """Queue an action; returns the refusal reason (also logged), None when accepted."""
            if self.pipeline is None:
                return "the node is not configured"
            try:
                command = self.pipeline.request_action(text)
            except ActionError as err:
                shown = text if len(text) <= 80 else text[:77] + "..."
                self.get_logger().error("action refused, the previous one stays: %s (got %r)" % (err, shown))
                return str(err)
            if command is None:
                self.get_logger().info("action cleared")
            else:
                self.get_logger().info("action: %r -> objects %s" % (command.narration, list(command.objects)))
            return None

        def _on_set_parameters(self, parameters):
            if self.settings is None:
                return SetParametersResult(successful=False, reason="the node's parameters are invalid: %s"
                                           % self.configure_error)
            values = {name: getattr(self.settings, node_params.attribute(name)) for name in node_params.SPECS}
            values.update({p.name: p.value for p in parameters if p.name in node_params.SPECS})
            try:
                new = node_params.make_settings({k: list(v) if isinstance(v, tuple) else v for k, v in values.items()})
            except ValueError as err:
                return SetParametersResult(successful=False, reason=str(err))
            if self.pipeline is not None:
                fixed = node_params.changed_configure_time(self.settings, new)
                if fixed:
                    return SetParametersResult(successful=False, reason="%s %s read at configure; clean the node up "
                                               "first (ros2 lifecycle set /%s cleanup)"
                                               % (", ".join(fixed), "is" if len(fixed) == 1 else "are", NODE_NAME))
                try:
                    self.pipeline.check_settings(new)
                    self.pipeline.update_settings(new)
                except ActionError as err:
                    return SetParametersResult(successful=False, reason="the current action would be invalid: %s" % err)
                if new.action != self.settings.action:
                    reason = self._apply_action(new.action)
                    if reason:
                        return SetParametersResult(successful=False, reason=reason)
            self.settings = new
            return SetParametersResult(successful=True)

        # --- inference thread ----------------------------------------------------------------------------

        def _handle_frame(self, item):
            msg, received, arrival_ns = item
            settings = self.settings
            began = time.perf_counter()
            try:
                rgb = self.converter(msg)
            except ImageConversionError as err:
                self.counters["refused"] += 1
                self.get_logger().warning("camera frame refused: %s" % err,
                                          throttle_duration_sec=settings.warn_throttle or None)
                return
            converted = time.perf_counter()
            result = self.pipeline.process(rgb)
            header = msg.header
            outputs = self.outputs
            publish_began = time.perf_counter()
            outputs["mask"].publish(image_msg(result.mask, "mono8", header))
            outputs["labels"].publish(image_msg(result.labels, "mono8", header))
            # Stage times in the objects message: where a frame's latency goes, for a consumer or a benchmark.
            # arrival_age: the frame's age (camera stamp to this node's callback), i.e. the camera hop.
            timings = dict(arrival_age=1e-6 * (arrival_ns - _stamp_nanoseconds(header.stamp)),
                           waiting=1000 * (began - received), convert=1000 * (converted - began), **result.timings_ms,
                           publish_images=1000 * (time.perf_counter() - publish_began))
            outputs["objects"].publish(objects_msg(header, result.action, result.objects, rgb.shape[:2], timings))
            if settings.publish_overlay and outputs["overlay"].get_subscription_count() > 0:
                overlay = draw_overlay(rgb, result.labels, result.objects,
                                       result.action.narration if result.action else "", settings.overlay_alpha)
                outputs["overlay"].publish(image_msg(overlay, "bgr8", header))
            latency_ns = self.get_clock().now().nanoseconds - _stamp_nanoseconds(header.stamp)
            self.stats.record(time.monotonic(), 1e-6 * latency_ns,
                              1000 * (time.perf_counter() - received))

        def _on_worker_error(self, err):
            self.counters["refused"] += 1
            throttle = (self.settings.warn_throttle if self.settings else 5.0) or None
            self.get_logger().error("frame failed: %s: %s" % (type(err).__name__, err), throttle_duration_sec=throttle)

        # --- diagnostics -----------------------------------------------------------------------------------

        def _publish_diagnostics(self):
            if self.slot is not None:
                self.counters["received"] = self._earlier_slots["received"] + self.slot.received
                self.counters["dropped"] = self._earlier_slots["dropped"] + self.slot.dropped
            received_recent = self.counters["received"] - self._reported["received"]
            refused_recent = self.counters["refused"] - self._reported["refused"]
            self._reported = {"received": self.counters["received"], "refused": self.counters["refused"]}
            summary = self.stats.summary(time.monotonic())
            level, message = diagnostic_level(self.state_label, self.configure_error, summary, received_recent,
                                              refused_recent)
            pipeline = self.pipeline
            action = pipeline.action if pipeline is not None else None
            values = {"state": self.state_label,
                      "backend": pipeline.predictor.backend if pipeline else "",
                      "model": str(pipeline.predictor.card.model_dir) if pipeline else "",
                      "rate_hz": summary["rate_hz"], "latency_ms_p50": summary["latency_ms_p50"],
                      "latency_ms_p95": summary["latency_ms_p95"], "processing_ms_p50": summary["processing_ms_p50"],
                      "frames_received": self.counters["received"], "frames_dropped": self.counters["dropped"],
                      "frames_refused": self.counters["refused"], "frames_published": summary["outputs"],
                      "action": action.narration if action else "",
                      "objects": ", ".join(action.objects) if action else "",
                      "image_conversion": self.converter.name if self.converter else ""}
            self.diagnostics_pub.publish(diagnostics_msg(self.get_clock().now().to_msg(),
                                                         self.get_fully_qualified_name().lstrip("/"), level, message,
                                                         values))

    return PerceptionNode


def start(node) -> bool:
    """Configure and activate; False (with the reason logged by the node) when configure fails."""
    from rclpy.lifecycle import TransitionCallbackReturn

    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("staying unconfigured; fix the parameters and run: ros2 lifecycle set /%s configure"
                                % NODE_NAME)
        return False
    return node.trigger_activate() == TransitionCallbackReturn.SUCCESS


def main(argv=None) -> int:
    """ROS executable: `perception_node --ros-args -p model_dir:=... --params-file config/perception.yaml`."""
    from actiseg_ros.dds import use_default_profile
    from actiseg_ros.ros.allocator import keep_freed_buffers

    use_default_profile()  # before rclpy.init: Fast DDS reads the profile when the participant is created
    keep_freed_buffers()  # megabyte buffers per frame, page-faulted in again on every frame otherwise
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=sys.argv if argv is None else argv)
    node = make_node_class()()
    try:
        if node.settings is not None and node.settings.autostart:
            start(node)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._stop_processing()
        node._release()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
