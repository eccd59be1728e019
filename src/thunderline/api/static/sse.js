/* Live CloudEvents from /v1/events (Server-Sent Events; the console cookie authenticates). */
"use strict";
window.tlEvents = function (onEvent, onState, correlationId) {
  const url = "/v1/events" + (correlationId ? "?correlation_id=" + encodeURIComponent(correlationId) : "");
  const source = new EventSource(url);
  source.onopen = function () { if (onState) onState("live"); };
  source.onerror = function () { if (onState) onState(source.readyState === 2 ? "closed" : "reconnecting…"); };
  source.onmessage = function (msg) { handle(msg); };
  const types = ["ui.command.ingest.received", "system.ingest.classified", "system.nlp.processed",
    "system.ml.inference.completed", "system.voxel.created", "system.dlq.classify_failed",
    "system.dlq.nlp_failed", "system.dlq.ml_inference_failed", "system.dlq.voxel_failed",
    "system.dlq.overload"];
  function handle(msg) {
    let event;
    try { event = JSON.parse(msg.data); } catch (e) { return; }
    onEvent(event);
  }
  types.forEach(function (t) { source.addEventListener(t, handle); });
  source.addEventListener("lagged", function () { if (onState) onState("live (some events skipped)"); });
  return source;
};
window.tlStageOf = {
  "system.ingest.classified": "classify",
  "system.nlp.processed": "nlp",
  "system.ml.inference.completed": "infer",
  "system.voxel.created": "package"
};
