/* Upload (drag and drop or file picker, one request per file with progress) and the live run view. */
"use strict";
(function () {
  const drop = document.getElementById("dropzone");
  const input = document.getElementById("file-input");
  const tbody = document.querySelector("#runs tbody");
  const empty = document.getElementById("runs-empty");
  const feed = document.getElementById("feed");
  const sseState = document.getElementById("sse-state");
  const runs = new Map();      // correlation id -> row state
  const early = new Map();     // events that arrived before the upload's answer
  const STAGES = ["classify", "nlp", "infer", "package"];

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function addRow(file) {
    empty.hidden = true;
    const tr = el("tr");
    tr.dataset.name = file.name;
    const name = el("td", "name", file.name);
    const corr = el("td", "correlation");
    const up = el("td");
    const bar = el("progress");
    bar.max = 100; bar.value = 0;
    bar.setAttribute("aria-label", "Upload of " + file.name);
    up.appendChild(bar);
    const stages = el("td", "stages");
    const chips = {};
    STAGES.forEach(function (s) { chips[s] = el("span", "chip", s); stages.appendChild(chips[s]); });
    const status = el("td", "status", "uploading");
    tr.append(name, corr, up, stages, status);
    tbody.prepend(tr);
    return { tr: tr, corr: corr, bar: bar, chips: chips, status: status, voxels: [], failed: 0 };
  }

  function apply(row, event) {
    const stage = window.tlStageOf[event.type];
    if (stage && row.chips[stage]) row.chips[stage].classList.add("done");
    if (event.type === "system.voxel.created") {
      const voxel = (event.data && event.data.voxel) || {};
      row.voxels.push(voxel.id);
      row.status.textContent = "";
      const link = el("a", "voxel-link", row.voxels.length > 1 ? "voxel stored (" + row.voxels.length + ")" : "voxel stored");
      link.href = "/voxels/" + encodeURIComponent(row.voxels[0]);
      row.status.appendChild(link);
      row.tr.classList.add("ok");
    } else if (event.type.indexOf("system.dlq.") === 0) {
      row.failed += 1;
      const reason = (event.data && event.data.reason) || "failed";
      row.tr.classList.add("failed");
      if (!row.voxels.length) {
        row.status.textContent = "";
        const link = el("a", "dlq-link", "dead-lettered: " + reason);
        link.href = "/dlq";
        row.status.appendChild(link);
      }
    } else if (!row.voxels.length && !row.failed) {
      row.status.textContent = stage ? stage + " done" : "queued";
    }
  }

  function showInFeed(event) {
    const li = el("li");
    const time = (event.time || "").slice(11, 19);
    const artifact = (event.data && event.data.artifact) || {};
    const name = artifact.name || (event.data && event.data.voxel && event.data.voxel.id) || "";
    li.append(el("time", "muted", time + " "), el("code", "", event.type), document.createTextNode(" " + name));
    feed.prepend(li);
    while (feed.children.length > 100) feed.lastChild.remove();
  }

  window.tlEvents(function (event) {
    showInFeed(event);
    const row = runs.get(event.correlationid);
    if (row) { apply(row, event); return; }
    const list = early.get(event.correlationid) || [];
    if (list.length < 50) list.push(event);
    early.set(event.correlationid, list);
    if (early.size > 500) early.delete(early.keys().next().value);
  }, function (state) { sseState.textContent = state; });

  function upload(file) {
    const row = addRow(file);
    const form = new FormData();
    form.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/ingest");
    xhr.setRequestHeader("X-TL-Console", "1");
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) row.bar.value = Math.round(100 * e.loaded / e.total); };
    xhr.onload = function () {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = {}; }
      if (xhr.status === 202) {
        row.bar.value = 100;
        row.tr.dataset.correlationId = body.correlation_id;
        const code = el("code", "", String(body.correlation_id).slice(-12));  // the short id
        code.title = body.correlation_id;
        row.corr.appendChild(code);
        runs.set(body.correlation_id, row);
        row.status.textContent = "queued";
        (early.get(body.correlation_id) || []).forEach(function (ev) { apply(row, ev); });
        early.delete(body.correlation_id);
      } else {
        row.tr.classList.add("failed");
        const err = body.error || {};
        row.status.textContent = "refused (" + xhr.status + "): " + (err.message || xhr.statusText);
      }
    };
    xhr.onerror = function () { row.tr.classList.add("failed"); row.status.textContent = "upload failed (network)"; };
    xhr.send(form);
  }

  function uploadAll(files) { Array.prototype.forEach.call(files, upload); }
  drop.addEventListener("click", function () { input.click(); });
  drop.addEventListener("keydown", function (e) {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  input.addEventListener("change", function () { uploadAll(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) { uploadAll(e.dataTransfer.files); });
})();
