"""perception_node: the `actiseg` lifecycle node. Camera frames + an action in, object masks out.

Topics (relative to the node's namespace, `~` = the node's own name; README.md, "The ROS 2 node", has the
details). At the root namespace the node `actiseg` uses /camera/image_raw, /actiseg/mask, ...; under
namespace robot1 /robot1/camera/image_raw, /robot1/actiseg/mask, ...:
  in   camera/image_raw    sensor_msgs/Image   QoS parameter image_qos (sensor data by default)
  in   ~/action            std_msgs/String     reliable, volatile, keep last
  out  ~/mask              sensor_msgs/Image   mono8, 255 = any active object, camera resolution
  out  ~/labels            sensor_msgs/Image   mono8, pixel = 1-based index into the objects list, 0 = none
  out  ~/objects           std_msgs/String     JSON: stamp, action, per object id, name, score, active, bbox, area
  out  ~/overlay           sensor_msgs/Image   bgr8, only while subscribed and publish_overlay is true
  out  /diagnostics        diagnostic_msgs/DiagnosticArray
With the parameter cameras = [C1, C2, ...] each camera C has C/image_raw in and ~/C/mask, ~/C/labels,
~/C/objects, ~/C/overlay out; all share one model and engine, and the frames waiting when the inference
thread becomes free run as one batch.

Threads: the executor's callbacks only drop frames into newest-only slots; the inference thread converts
the waiting frames and runs the engine; a publishing thread decides, draws and publishes each batch while
the inference thread already runs the next one.

Lifecycle: configure loads the model (a failure is logged and the transition fails; the node stays up,
unconfigured, so it can be fixed and configured again), activate subscribes to the cameras and starts the
inference thread, deactivate stops both, cleanup frees the model. With the parameter autostart (default)
the node configures and activates itself. SIGINT or SIGTERM deactivates and cleans up before the process
ends (exit code 0).

This module only wires ROS callbacks to the plain helpers in actiseg_ros.ros.
"""
from __future__ import annotations

import functools
import signal
import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image
from std_msgs.msg import String

from actiseg_ros.ros import names
from actiseg_ros.ros import params as node_params
from actiseg_ros.ros.action_parsing import ActionError
from actiseg_ros.ros.diagnostics import diagnostic_level
from actiseg_ros.ros.image_conversion import ImageConversionError, ImageConverter
from actiseg_ros.ros.latest_frame import FrameWorker, HandOff, LatestFrameSlots
from actiseg_ros.ros.messages import diagnostics_msg, image_msg, objects_msg
from actiseg_ros.ros.overlay import draw_overlay
from actiseg_ros.ros.pipeline import ConfigureError, create_pipeline
from actiseg_ros.ros.qos import output_profile, profile
from actiseg_ros.ros.stats import OutputStats

NODE_NAME = names.NODE_NAME
SPIN_PERIOD_S = 0.1  # the executor wakes at least this often, so a signal is acted on within it


def _stamp_nanoseconds(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class Camera:
    """One camera the node serves: its input topic, its output publishers and its own numbers."""

    def __init__(self, name: str):
        self.name = name  # '' = the single camera (parameter cameras empty)
        self.image_topic = names.camera_topic(name)
        self.subscription = None
        self.outputs: dict = {}
        self.stats = OutputStats()
        self.refused = 0
        self.earlier = {"received": 0, "dropped": 0}  # counts of the slots of earlier activations

    @property
    def label(self) -> str:
        return self.name or "camera"


class PerceptionNode(LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
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
        self.cameras: dict = {}  # name -> Camera, from configure on
        self.action_sub = None
        self.slots = self.worker = self.publishing = None
        self.stats = OutputStats()  # every camera's outputs together
        self.counters = {"received": 0, "dropped": 0, "refused": 0, "batches": 0, "batch_size_max": 0}
        self._reported = {"received": 0, "refused": 0}
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, names.DIAGNOSTICS_TOPIC, 10)
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
        kinds = {"mask": Image, "labels": Image, "objects": String, "overlay": Image}
        self.cameras = {}
        for name in self.settings.cameras or ("",):
            camera = self.cameras[name] = Camera(name)
            camera.outputs = {kind: self.create_lifecycle_publisher(kinds[kind], names.output_topic(kind, name), qos)
                              for kind in names.OUTPUT_KINDS}
        # The action topic is heard from configure on, so an action sent before activation is not lost.
        self.action_sub = self.create_subscription(String, names.ACTION_TOPIC, self._on_action, profile("command"))
        predictor = self.pipeline.predictor
        gate, mask_threshold = self.pipeline.thresholds()
        self.get_logger().info("configured in %.1f s: model %s (input %dx%d), backend %s, image conversion %s, "
                               "positive gate %g, mask threshold %g%s"
                               % (time.monotonic() - began, predictor.card.model_dir, predictor.card.input_hw[1],
                                  predictor.card.input_hw[0], predictor.backend, self.converter.name, gate,
                                  mask_threshold, ", cameras %s" % ", ".join(self.settings.cameras)
                                  if self.settings.cameras else ""))
        self.state_label = "inactive"
        return super().on_configure(state)

    def on_activate(self, state):
        self.slots = LatestFrameSlots(self.cameras)
        self.publishing = HandOff(self._publish_batch, self._on_worker_error)
        self.publishing.start()
        self.worker = FrameWorker(self.slots, self._handle_frames, self._on_worker_error)
        self.worker.start()
        image_qos = profile(self.settings.image_qos)
        for name, camera in self.cameras.items():
            camera.subscription = self.create_subscription(Image, camera.image_topic,
                                                           functools.partial(self._on_image, name), image_qos)
        self.state_label = "active"
        self.get_logger().info("active: listening to %s (%s QoS)"
                               % (", ".join(c.subscription.topic_name for c in self.cameras.values()),
                                  self.settings.image_qos))
        return super().on_activate(state)

    def on_deactivate(self, state):
        self._stop_processing()
        self.state_label = "inactive"
        self.get_logger().info("deactivated: camera subscriptions and inference thread stopped")
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        self._release()
        self.state_label = "unconfigured"
        self.get_logger().info("cleaned up: model and inference engine released")
        return super().on_cleanup(state)

    def on_shutdown(self, state):
        self._stop_processing()
        self._release()
        self.state_label = "finalized"
        return super().on_shutdown(state)

    def shut_down(self) -> None:
        """Leave the lifecycle the orderly way before the process ends: deactivate (the inference thread
        finishes its frame and stops while the context can still publish), then clean up (engine released)."""
        if self.state_label == "active":
            self.trigger_deactivate()
        if self.state_label == "inactive":
            self.trigger_cleanup()
        self._stop_processing()  # a transition that failed must not leave the thread or the model behind
        self._release()

    def _stop_processing(self):
        for camera in self.cameras.values():
            if camera.subscription is not None:
                self.destroy_subscription(camera.subscription)
                camera.subscription = None
        if self.worker is not None:
            if not self.worker.stop():
                # A frame still running after the worker's 5 s (a stalled engine): wait for it, since cleanup
                # would otherwise close the engine under it.
                self.get_logger().warning("the inference thread is still running a frame after 5 s; waiting for it")
                self.worker.stop(timeout=None)
            self.worker = None
        if self.publishing is not None:  # after the inference thread: it publishes what that thread handed over
            if not self.publishing.stop():
                self.get_logger().warning("the publishing thread is still busy after 5 s; waiting for it")
                self.publishing.stop(timeout=None)
            self.publishing = None
        if self.slots is not None:  # the next activation starts fresh slots; keep the totals
            for name, camera in self.cameras.items():
                camera.earlier["received"] += self.slots.received[name]
                camera.earlier["dropped"] += self.slots.dropped[name]
            self.slots = None

    def _release(self):
        for camera in self.cameras.values():
            for publisher in camera.outputs.values():
                self.destroy_lifecycle_publisher(publisher)
            camera.outputs = {}
        if self.action_sub is not None:
            self.destroy_subscription(self.action_sub)
            self.action_sub = None
        if self.pipeline is not None:
            self.pipeline.predictor.close()
            self.pipeline = None

    # --- callbacks (executor thread): hand over and return ---------------------------------------

    def _on_image(self, camera: str, msg):
        slots = self.slots
        if slots is not None:
            slots.put(camera, (msg, time.perf_counter(), self.get_clock().now().nanoseconds))

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
                                           "first (ros2 lifecycle set %s cleanup)"
                                           % (", ".join(fixed), "is" if len(fixed) == 1 else "are",
                                              self.get_fully_qualified_name()))
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

    def _handle_frames(self, items):
        """The frames the worker took together, [(camera name, (msg, perf_counter at arrival, arrival ns))]:
        converted and run through the model as one batch, then handed to the publishing thread."""
        settings = self.settings
        began = time.perf_counter()
        frames, taken = [], []
        for name, item in items:
            try:
                rgb = self.converter(item[0])
            except ImageConversionError as err:
                self.counters["refused"] += 1
                self.cameras[name].refused += 1
                self.get_logger().warning("camera frame refused%s: %s" % (" (%s)" % name if name else "", err),
                                          throttle_duration_sec=settings.warn_throttle or None)
                continue
            frames.append((name, rgb))
            taken.append(item)
        if not frames:
            return
        converted = time.perf_counter()
        batch = len(frames)
        self.counters["batches"] += 1
        self.counters["batch_size_max"] = max(self.counters["batch_size_max"], batch)
        try:
            batch_run = self.pipeline.run(frames)
        except Exception as err:  # every frame of the batch is lost, and counted so, per camera
            self._frames_failed(err, [name for name, _rgb in frames])
            return
        self.publishing.put((batch_run, taken, settings, began, converted))

    def _publish_batch(self, handed):
        """Publishing thread: each frame of a BatchRun decided and published camera by camera as it is ready."""
        batch_run, taken, settings, began, converted = handed
        results = self.pipeline.finish(batch_run)
        names_left = [name for name, _rgb in batch_run.frames]
        try:
            for (name, rgb), (msg, received, arrival_ns), result in zip(batch_run.frames, taken, results):
                self._publish(self.cameras[name], settings, msg, received, arrival_ns, rgb, result,
                              1000 * (began - received), 1000 * (converted - began), len(batch_run.frames))
                names_left.pop(0)
        except Exception as err:  # the frame that failed and those after it in the batch
            self._frames_failed(err, names_left)

    def _publish(self, camera, settings, msg, received, arrival_ns, rgb, result, waiting_ms, convert_ms, batch):
        header = msg.header
        outputs = camera.outputs
        publish_began = time.perf_counter()
        outputs["mask"].publish(image_msg(result.mask, "mono8", header))
        outputs["labels"].publish(image_msg(result.labels, "mono8", header))
        # Stage times in the objects message: where a frame's latency goes, for a consumer or a benchmark.
        # arrival_age: the frame's age (camera stamp to this node's callback), i.e. the camera hop.
        timings = dict(arrival_age=1e-6 * (arrival_ns - _stamp_nanoseconds(header.stamp)), waiting=waiting_ms,
                       convert=convert_ms, **result.timings_ms,
                       publish_images=1000 * (time.perf_counter() - publish_began))
        outputs["objects"].publish(objects_msg(header, result.action, result.objects, rgb.shape[:2], timings,
                                               camera.name, batch))
        if settings.publish_overlay and outputs["overlay"].get_subscription_count() > 0:
            overlay = draw_overlay(rgb, result.labels, result.objects,
                                   result.action.narration if result.action else "", settings.overlay_alpha)
            outputs["overlay"].publish(image_msg(overlay, "bgr8", header))
        latency_ms = 1e-6 * (self.get_clock().now().nanoseconds - _stamp_nanoseconds(header.stamp))
        now, processing_ms = time.monotonic(), 1000 * (time.perf_counter() - received)
        self.stats.record(now, latency_ms, processing_ms)
        camera.stats.record(now, latency_ms, processing_ms)

    def _frames_failed(self, err, camera_names):
        """Frames lost to an engine or publishing error: counted as refused, per camera, and logged."""
        for name in camera_names:
            self.counters["refused"] += 1
            if name in self.cameras:
                self.cameras[name].refused += 1
        self._log_frame_error(err)

    def _on_worker_error(self, err):
        """An error outside the per-frame paths above (e.g. the hand-over itself): one frame counted."""
        self.counters["refused"] += 1
        self._log_frame_error(err)

    def _log_frame_error(self, err):
        throttle = (self.settings.warn_throttle if self.settings else 5.0) or None
        self.get_logger().error("frame failed: %s: %s" % (type(err).__name__, err), throttle_duration_sec=throttle)

    # --- diagnostics -----------------------------------------------------------------------------------

    def _camera_counts(self, name: str, camera: Camera) -> tuple:
        slots = self.slots
        received = camera.earlier["received"] + (slots.received[name] if slots is not None else 0)
        dropped = camera.earlier["dropped"] + (slots.dropped[name] if slots is not None else 0)
        return received, dropped

    def _publish_diagnostics(self):
        counts = {name: self._camera_counts(name, camera) for name, camera in self.cameras.items()}
        if counts:
            self.counters["received"] = sum(received for received, _dropped in counts.values())
            self.counters["dropped"] = sum(dropped for _received, dropped in counts.values())
        received_recent = self.counters["received"] - self._reported["received"]
        refused_recent = self.counters["refused"] - self._reported["refused"]
        self._reported = {"received": self.counters["received"], "refused": self.counters["refused"]}
        now = time.monotonic()
        summary = self.stats.summary(now)
        level, message = diagnostic_level(self.state_label, self.configure_error, summary, received_recent,
                                          refused_recent)
        pipeline = self.pipeline
        action = pipeline.action if pipeline is not None else None
        gate, mask_threshold = pipeline.thresholds() if pipeline is not None else (None, None)
        values = {"state": self.state_label,
                  "backend": pipeline.predictor.backend if pipeline else "",
                  "model": str(pipeline.predictor.card.model_dir) if pipeline else "",
                  "rate_hz": summary["rate_hz"], "latency_ms_p50": summary["latency_ms_p50"],
                  "latency_ms_p95": summary["latency_ms_p95"], "processing_ms_p50": summary["processing_ms_p50"],
                  "frames_received": self.counters["received"], "frames_dropped": self.counters["dropped"],
                  "frames_refused": self.counters["refused"], "frames_published": summary["outputs"],
                  "batches": self.counters["batches"], "batch_size_max": self.counters["batch_size_max"],
                  "positive_gate": gate, "mask_threshold": mask_threshold,
                  "action": action.narration if action else "",
                  "objects": ", ".join(action.objects) if action else "",
                  "image_conversion": self.converter.name if self.converter else ""}
        if self.settings is not None and self.settings.cameras:
            for name, camera in self.cameras.items():  # each camera's own numbers, keys prefixed with its name
                camera_summary = camera.stats.summary(now)
                received, dropped = counts[name]
                values.update({"%s.frames_received" % name: received, "%s.frames_dropped" % name: dropped,
                               "%s.frames_refused" % name: camera.refused,
                               "%s.frames_published" % name: camera_summary["outputs"],
                               "%s.rate_hz" % name: camera_summary["rate_hz"],
                               "%s.latency_ms_p95" % name: camera_summary["latency_ms_p95"]})
        self.diagnostics_pub.publish(diagnostics_msg(self.get_clock().now().to_msg(),
                                                     self.get_fully_qualified_name().lstrip("/"), level, message,
                                                     values))


def start(node) -> bool:
    """Configure and activate; False (with the reason logged by the node) when configure fails."""
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("staying unconfigured; fix the parameters and run: ros2 lifecycle set %s configure"
                                % node.get_fully_qualified_name())
        return False
    return node.trigger_activate() == TransitionCallbackReturn.SUCCESS


def stop_on_signals(signals=(signal.SIGINT, signal.SIGTERM)) -> tuple:
    """Python handlers for SIGINT and SIGTERM that only set the returned Event (and record the signal's name
    in the returned list); a second signal of a kind restores its default action, so it ends a stuck process.

    rclpy's own handlers (rclpy.init's default) shut the context down from inside the signal, while the
    inference thread may be publishing: it then fails with "publisher's context is invalid". With these, the
    node is taken down in order: stop the thread, leave the lifecycle, then shut the context down."""
    stop = threading.Event()
    received: list = []

    def handle(number, _frame):
        if stop.is_set():
            signal.signal(number, signal.SIG_DFL)
        received.append(signal.Signals(number).name)
        stop.set()

    for number in signals:
        signal.signal(number, handle)
    return stop, received


def main(argv=None) -> int:
    """ROS executable: `perception_node --ros-args -p model_dir:=... --params-file config/perception.yaml`."""
    from actiseg_ros.dds import use_default_profile
    from actiseg_ros.ros.allocator import keep_freed_buffers

    use_default_profile()  # before rclpy.init: Fast DDS reads the profile when the participant is created
    keep_freed_buffers()  # megabyte buffers per frame, page-faulted in again on every frame otherwise
    stop, signals = stop_on_signals()
    rclpy.init(args=sys.argv if argv is None else argv, signal_handler_options=SignalHandlerOptions.NO)
    node = PerceptionNode()
    executor = SingleThreadedExecutor()
    try:
        if node.settings is not None and node.settings.autostart and not stop.is_set():
            start(node)
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if signals:
            node.get_logger().info("%s: shutting down" % signals[0])
        node.shut_down()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
