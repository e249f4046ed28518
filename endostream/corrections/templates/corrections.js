// The report's edit mode: correct the sections, then download a corrected sections.json.
// The document it saves is the one endostream.corrections.rules.reviewed_document builds
// (same invariants, same review record), and before it is offered it is checked with the
// readers' own rules (corrections-rules.js, given their numbers by Python).
(function () {
  "use strict";
  var root = document.getElementById("corrections");
  var dataNode = document.getElementById("corrections-data");
  if (!root || !dataNode) { return; }
  var data = JSON.parse(dataNode.textContent);
  var doc = data.document;
  var fps = doc.source && doc.source.fps;
  var player = document.getElementById("player");
  var editor = document.getElementById("edit-panel");
  var toggle = document.getElementById("edit-toggle");
  var message = document.getElementById("edit-message");
  var body = document.querySelector("#edit-table tbody");
  var bar = document.getElementById("edit-bar");
  var at = document.getElementById("edit-at");
  var rules = window.endostreamCorrectionRules(data.rules);

  // The model's sections: those of a document reviewed before are kept in its review.
  var model = (doc.review && doc.review.original_sections) || doc.sections;
  var labels = data.labels.map(function (l) { return l.value; });
  var byValue = {};
  data.labels.forEach(function (l) { byValue[l.value] = l; });
  var t0 = model[0].start_s, f0 = model[0].start_frame;
  var last = model[model.length - 1];
  // The model's boundaries keep the times the segmenter gave them (midway between
  // analysed frames): a boundary on one of its frames takes its time, on both sides.
  var modelTimes = {};
  model.forEach(function (s) { modelTimes[s.start_frame] = s.start_s; });
  var state = copy(doc.sections);
  var history = [];
  var selected = 0;

  function copy(list) { return list.map(function (s) { return Object.assign({}, s); }); }
  function round(x, digits) { var k = Math.pow(10, digits); return Math.round(x * k) / k; }
  function frameAt(t) { return f0 + Math.round((t - t0) * fps); }
  function timeOf(frame) {
    return frame in modelTimes ? modelTimes[frame] : rules.frameTime(frame, t0, f0, fps);
  }

  function clock(t) {
    t = Math.max(t, 0);
    var h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
    var ss = (s < 10 ? "0" : "") + s.toFixed(1);
    if (ss === "60.0") { ss = "59.9"; }
    return h ? h + ":" + (m < 10 ? "0" : "") + m + ":" + ss : m + ":" + ss;
  }

  // "83.4", "1:23.4" or "1:02:05" -> seconds; NaN when it is none of these.
  function parseClock(text) {
    var parts = String(text).trim().split(":");
    if (parts.length > 3 || parts.some(function (p) { return !/^\d+(\.\d*)?$/.test(p); })) {
      return NaN;
    }
    return parts.reduce(function (acc, p) { return acc * 60 + parseFloat(p); }, 0);
  }

  function say(text, refused) {
    message.textContent = text;
    message.classList.toggle("refused", !!refused);
  }

  // The readers' words, with the row a person sees beside the file's index.
  function rowsNamed(problem) {
    return problem.replace(/(^|[^\w.])sections\[(\d+)\]/g, function (m, before, k) {
      return before + "section " + (Number(k) + 1) + " (sections[" + k + "] in the file)";
    });
  }

  // Apply an edit: refused (with the rule) when the file it makes would be refused.
  function commit(next, done) {
    var why = rules.fileProblem(corrected(next));
    if (why) {
      say("Refused: the corrected file would break a rule: " + rowsNamed(why) + ".", true);
      return false;
    }
    history.push({ sections: state, selected: selected });
    state = next;
    say(done, false);
    render();
    return true;
  }

  function moveBoundary(i, t, what) {
    // Boundary i is the start of section i (the end of section i - 1).
    if (i <= 0 || i >= state.length) {
      say("Refused: the " + (i <= 0 ? "first section starts" : "last section ends") +
          " where the video does.", true);
      return;
    }
    if (!isFinite(t)) { say("Refused: give a time as 83.4, 1:23.4 or 1:02:05.", true); return; }
    var frame = frameAt(t), prev = state[i - 1], cur = state[i];
    if (frame <= prev.start_frame || frame > cur.end_frame) {
      say("Refused: " + clock(t) + " is outside sections " + i + " and " + (i + 1) +
          "; a boundary moves only between the sections it separates.", true);
      return;
    }
    var next = copy(state);
    next[i - 1].end_frame = frame - 1;
    next[i - 1].end_s = timeOf(frame);
    next[i].start_frame = frame;
    next[i].start_s = timeOf(frame);
    commit(next, what + " " + clock(timeOf(frame)) + " (frame " + frame + ").");
  }

  function containing(frame) {
    for (var i = 0; i < state.length; i++) {
      if (state[i].start_frame <= frame && frame <= state[i].end_frame) { return i; }
    }
    return -1;
  }

  function split(t) {
    var frame = frameAt(t), i = containing(frame);
    if (i < 0 || frame <= state[i].start_frame) {
      say("Refused: " + clock(t) + " is the first frame of a section (or outside the video); " +
          "move the playhead into a section to split it.", true);
      return;
    }
    var next = copy(state), right = Object.assign({}, state[i]);
    next[i].end_frame = frame - 1;
    next[i].end_s = timeOf(frame);
    right.start_frame = frame;
    right.start_s = timeOf(frame);
    next.splice(i + 1, 0, right);
    if (commit(next, "Split section " + (i + 1) + " at " + clock(timeOf(frame)) + ".")) {
      selected = i + 1;
      render();
    }
  }

  function merge(i) {
    if (i >= state.length - 1) { say("Refused: the last section has no next one.", true); return; }
    var next = copy(state);
    next[i].end_frame = next[i + 1].end_frame;
    next[i].end_s = next[i + 1].end_s;
    next.splice(i + 1, 1);
    commit(next, "Merged sections " + (i + 1) + " and " + (i + 2) + ".");
  }

  function relabel(i, label) {
    var next = copy(state);
    next[i].label = label;
    var name = (byValue[label] || { name: label }).name;
    commit(next, "Section " + (i + 1) + " is now " + name + ".");
  }

  function undo() {
    var top = history.pop();
    if (!top) { say("Nothing to undo.", false); return; }
    state = top.sections;
    selected = top.selected;
    say("Undone.", false);
    render();
  }

  // The playhead: the player's time, or a time typed into the "at" field.
  var playheadS = player ? player.currentTime : t0;
  function playhead() { return playheadS; }

  function sameAsModel(s) {
    return model.some(function (m) {
      return m.label === s.label && m.start_frame === s.start_frame && m.end_frame === s.end_frame;
    });
  }

  function goodFraction(s) {
    var total = 0, weight = 0;
    model.forEach(function (m) {
      var overlap = Math.min(m.end_frame, s.end_frame) - Math.max(m.start_frame, s.start_frame) + 1;
      if (overlap > 0) { total += overlap * m.good_fraction; weight += overlap; }
    });
    return weight ? round(total / weight, 4) : 0;
  }

  // The corrected document of the sections `list`, as reviewed_document makes it: times
  // from the frames (timeOf), so neighbours share each boundary; a section equal to one
  // of the model's (label and frames) is the model's, with its figures.
  function corrected(list) {
    var changed = [];
    var sections = list.map(function (s, i) {
      var kept = model.filter(function (m) {
        return m.label === s.label && m.start_frame === s.start_frame && m.end_frame === s.end_frame;
      })[0];
      if (kept) { return Object.assign({}, kept); }
      changed.push(i);
      var end_s = i + 1 < list.length ? timeOf(s.end_frame + 1) : last.end_s;
      return { label: s.label, start_s: timeOf(s.start_frame), end_s: end_s,
               start_frame: s.start_frame, end_frame: s.end_frame,
               good_fraction: goodFraction(s), confidence: 1.0 };
    });
    var out = JSON.parse(JSON.stringify(doc));
    out.sections = sections;
    out.review = {
      tool: data.tool,
      reviewed_at: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      changed: changed,
      original_sections: JSON.parse(JSON.stringify(model))
    };
    return out;
  }

  function save() {
    var out = corrected(state);
    // The very file about to be offered, checked as every command will read it.
    var why = rules.fileProblem(out);
    if (why) {
      say("Not saved: the corrected file would break a rule: " + rowsNamed(why) +
          ". Undo the last change, or reload the page and correct again.", true);
      return;
    }
    var blob = new Blob([JSON.stringify(out, null, 2) + "\n"], { type: "application/json" });
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = data.filename;
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
    say("Saved " + data.filename + ": " + out.review.changed.length + " of " +
        out.sections.length + " sections changed. The original file is unchanged.", false);
  }

  function cell(tr, content, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    if (typeof content === "string") { td.textContent = content; } else { td.appendChild(content); }
    tr.appendChild(td);
    return td;
  }

  function render() {
    var span = last.end_s - t0 || 1;
    body.textContent = "";
    bar.textContent = "";
    state.forEach(function (s, i) {
      var info = byValue[s.label] || { name: s.label, color: "#999", text: "#000" };
      var piece = document.createElement("span");
      piece.className = "edit-piece" + (s.label === "unusable" ? " edit-unusable" : "") +
                        (i === selected ? " edit-selected" : "");
      piece.style.left = (100 * (s.start_s - t0) / span) + "%";
      piece.style.width = (100 * (s.end_s - s.start_s) / span) + "%";
      piece.style.background = info.color;
      piece.title = (i + 1) + " " + info.name;
      piece.addEventListener("click", function () { selected = i; render(); });
      bar.appendChild(piece);

      var tr = document.createElement("tr");
      tr.className = "edit-row" + (i === selected ? " edit-selected" : "") +
                     (sameAsModel(s) ? "" : " edit-changed");
      tr.addEventListener("click", function (e) {
        if (e.target.tagName !== "SELECT" && e.target.tagName !== "INPUT") { selected = i; render(); }
      });
      cell(tr, String(i + 1), "num");
      var select = document.createElement("select");
      select.setAttribute("aria-label", "Label of section " + (i + 1));
      data.labels.forEach(function (l) {
        var option = document.createElement("option");
        option.value = l.value;
        option.textContent = l.name;
        option.selected = l.value === s.label;
        select.appendChild(option);
      });
      select.style.background = info.color;
      select.style.color = info.text;
      select.addEventListener("change", function () { selected = i; relabel(i, select.value); });
      cell(tr, select);
      var start = document.createElement("input");
      start.type = "text";
      start.inputMode = "decimal";
      start.value = clock(s.start_s);
      start.setAttribute("aria-label", "Start of section " + (i + 1));
      start.disabled = i === 0;
      start.addEventListener("change", function () {
        selected = i;
        moveBoundary(i, parseClock(start.value), "Section " + (i + 1) + " now starts at");
        render();
      });
      cell(tr, start, "num");
      cell(tr, clock(s.end_s), "num");
      cell(tr, s.start_frame + "–" + s.end_frame, "num edit-frames");
      body.appendChild(tr);
    });
    var cursor = document.createElement("span");
    cursor.className = "edit-cursor";
    cursor.id = "edit-cursor";
    bar.appendChild(cursor);
    drawCursor();
  }

  function drawCursor() {
    var cursor = document.getElementById("edit-cursor");
    if (!cursor) { return; }
    var span = last.end_s - t0 || 1;
    cursor.style.left = (100 * Math.min(Math.max(playheadS - t0, 0), span) / span) + "%";
  }

  function act(op) {
    var t = playhead();
    if (op === "undo") { undo(); return; }
    if (op === "save") { save(); return; }
    if (op === "merge") { merge(selected); return; }
    if (!isFinite(t)) { say("Refused: play the video to a place, or type a time.", true); return; }
    if (op === "start") { moveBoundary(selected, t, "Section " + (selected + 1) + " now starts at"); }
    if (op === "end") { moveBoundary(selected + 1, t, "Section " + (selected + 1) + " now ends at"); }
    if (op === "split") { split(t); }
  }

  if (!fps) {
    toggle.disabled = true;
    say("Editing needs the video's frame rate, which this sections file does not give.", true);
    return;
  }
  toggle.addEventListener("click", function () {
    var open = editor.hidden;
    editor.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    toggle.textContent = open ? "Close edit mode" : "Correct sections";
    if (open) { render(); }
  });
  Array.prototype.forEach.call(root.querySelectorAll("button[data-op]"), function (b) {
    b.addEventListener("click", function () { act(b.getAttribute("data-op")); });
  });
  if (player) {
    player.addEventListener("timeupdate", function () {
      playheadS = player.currentTime;
      if (document.activeElement !== at) { at.value = clock(playheadS); }
      drawCursor();
    });
  }
  at.addEventListener("change", function () {
    var typed = parseClock(at.value);
    if (!isFinite(typed)) { say("Refused: give a time as 83.4, 1:23.4 or 1:02:05.", true); return; }
    playheadS = typed;
    if (player) { player.currentTime = typed; }
    drawCursor();
  });
  at.value = clock(playheadS);
}());
