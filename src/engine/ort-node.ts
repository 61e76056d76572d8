/**
 * onnxruntime-node, imported once for the whole package, with ONNX Runtime's telemetry turned off.
 *
 * The Linux and macOS builds of ONNX Runtime (1.29 on) start Microsoft's telemetry client when the first
 * session is created: it writes a device id and an event database under ~/.cache/Microsoft/DeveloperTools/
 * .onnxruntime, an empty mat-debug-<pid>.log and a .ses file in the temp folder, and queues events for upload.
 * No session option or `ort.env` setting reaches it; the runtime reads the environment variable
 * ORT_DISABLE_TELEMETRY when it initialises (on the first InferenceSession.create, not on import), so setting
 * it here, before any module of this package can create a session, is enough. A value the user set is kept
 * (ORT_DISABLE_TELEMETRY=0 turns telemetry back on). It applies to the whole process: a host program that
 * created an ONNX Runtime session before importing rebasin has already started telemetry.
 */
import * as ort from 'onnxruntime-node';

if (!process.env.ORT_DISABLE_TELEMETRY) process.env.ORT_DISABLE_TELEMETRY = '1';

export { ort };
