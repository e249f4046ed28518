// The rules of a corrected sections.json, as the readers apply them: the shipped schema
// (endostream.output.schema_check), the document's invariants
// (endostream.output.document.invariant_problem) and the rules of a correction
// (endostream.output.review_rules), in the same order and the same words. The numbers
// come from Python (endostream.corrections.rules.page_rules); none is restated here.
// tests/test_corrections_page_rules.py runs this and the Python reader on the same files.
window.endostreamCorrectionRules = function (rules) {
  "use strict";
  var TOL = rules.time_tolerance_s;

  // Python's "{x:g}" and "{x:.3f}" for the numbers the messages show.
  function g(x) { return String(Number(Number(x).toPrecision(6))); }
  function json(v) { return JSON.stringify(v === undefined ? null : v).slice(0, 40); }
  function round3(x) { return Math.round(x * 1000) / 1000; }

  // -- the schema (the part of JSON Schema that schema_check implements) ---------------
  var TYPES = {
    object: function (v) { return v !== null && typeof v === "object" && !Array.isArray(v); },
    array: Array.isArray,
    string: function (v) { return typeof v === "string"; },
    "boolean": function (v) { return typeof v === "boolean"; },
    "null": function (v) { return v === null; },
    number: function (v) { return typeof v === "number" && isFinite(v); },
    integer: function (v) { return typeof v === "number" && Number.isInteger(v); }
  };
  function where(path) { return path ? path + ": " : ""; }
  function isNumber(v) { return TYPES.number(v); }
  function schemaProblem(value, schema, path) {
    if (schema.$ref) {
      var target = rules.schema;
      schema.$ref.slice(2).split("/").forEach(function (part) { target = target[part]; });
      schema = Object.assign({}, target, schema);
      delete schema.$ref;
    }
    var checks = [
      ["type", function () {
        var names = [].concat(schema.type);
        if (names.some(function (n) { return TYPES[n](value); })) { return null; }
        return where(path) + "expected " + names.join(" or ") + ", got " + json(value);
      }],
      ["const", function () {
        return value === schema["const"] ? null
          : where(path) + "expected " + JSON.stringify(schema["const"]) + ", got " + json(value);
      }],
      ["enum", function () {
        return schema["enum"].indexOf(value) >= 0 ? null
          : where(path) + json(value) + " is not one of " + JSON.stringify(schema["enum"]);
      }],
      ["minimum", function () {
        return !isNumber(value) || value >= schema.minimum ? null
          : where(path) + value + " is below the minimum " + schema.minimum;
      }],
      ["exclusiveMinimum", function () {
        return !isNumber(value) || value > schema.exclusiveMinimum ? null
          : where(path) + value + " is not above " + schema.exclusiveMinimum;
      }],
      ["maximum", function () {
        return !isNumber(value) || value <= schema.maximum ? null
          : where(path) + value + " is above the maximum " + schema.maximum;
      }],
      ["minLength", function () {
        return typeof value !== "string" || value.length >= schema.minLength ? null
          : where(path) + "shorter than " + schema.minLength + " character(s)";
      }],
      ["pattern", function () {
        return typeof value !== "string" || new RegExp(schema.pattern).test(value) ? null
          : where(path) + "'" + value.slice(0, 40) + "' does not match '" + schema.pattern + "'";
      }],
      ["required", function () {
        if (!TYPES.object(value)) { return null; }
        var missing = schema.required.filter(function (k) { return !(k in value); });
        return missing.length ? where(path) + "missing field '" + missing[0] + "'" : null;
      }],
      ["properties", function () {
        if (!TYPES.object(value)) { return null; }
        for (var key in schema.properties) {
          if (key in value) {
            var sub = path ? path + "." + key : key;
            var p = schemaProblem(value[key], schema.properties[key], sub);
            if (p) { return p; }
          }
        }
        return null;
      }],
      ["additionalProperties", function () {
        if (!TYPES.object(value)) { return null; }
        var extra = schema.additionalProperties, known = schema.properties || {};
        for (var key in value) {
          if (key in known) { continue; }
          if (extra === false) { return where(path) + "unknown field '" + key + "'"; }
          if (TYPES.object(extra)) {
            var p = schemaProblem(value[key], extra, path ? path + "." + key : key);
            if (p) { return p; }
          }
        }
        return null;
      }],
      ["minItems", function () {
        return !Array.isArray(value) || value.length >= schema.minItems ? null
          : where(path) + "fewer than " + schema.minItems + " item(s)";
      }],
      ["items", function () {
        if (!Array.isArray(value)) { return null; }
        for (var k = 0; k < value.length; k++) {
          var p = schemaProblem(value[k], schema.items, path + "[" + k + "]");
          if (p) { return p; }
        }
        return null;
      }]
    ];
    for (var i = 0; i < checks.length; i++) {
      if (checks[i][0] in schema) {
        var problem = checks[i][1]();
        if (problem) { return problem; }
      }
    }
    return null;
  }

  // -- the document's invariants (output.document.invariant_problem) -------------------
  function invariantProblem(d) {
    var sections = d.sections, src = d.source, fps = src.fps;
    if (!sections.length) { return "no sections"; }
    var slack = (fps ? rules.slack_frames / fps : 0) + rules.slack_s;
    var prev = null, kind;
    for (var k = 0; k < sections.length; k++) {
      var s = sections[k], at = "sections[" + k + "]";
      if (s.end_frame < s.start_frame) {
        return at + " ends at frame " + s.end_frame + " before it starts at " + s.start_frame;
      }
      if (!(s.end_s > s.start_s)) {
        var lastOfPartial = k === sections.length - 1 && !d.complete && s.end_s === s.start_s;
        if (!lastOfPartial) {
          return at + " ends at " + s.end_s + " s, not after its start " + s.start_s + " s";
        }
      }
      if (prev === null) {
        if (s.start_frame !== 0 || Math.abs(s.start_s) > TOL) {
          return at + " starts at frame " + s.start_frame + ", " + s.start_s + " s, not at 0";
        }
      } else {
        if (s.start_frame !== prev.end_frame + 1) {
          kind = s.start_frame <= prev.end_frame ? "overlaps" : "leaves a gap to";
          return at + " " + kind + " the one before (frame " + s.start_frame + " after " +
                 prev.end_frame + ")";
        }
        if (Math.abs(s.start_s - prev.end_s) > TOL) {
          kind = s.start_s < prev.end_s ? "overlaps" : "leaves a gap to";
          return at + " " + kind + " the one before (" + s.start_s + " s after " +
                 prev.end_s + " s)";
        }
      }
      prev = s;
    }
    var duration = src.duration_s, frames = src.frames;
    if (duration !== null && prev.end_s > duration + slack) {
      return "the sections end at " + prev.end_s + " s, after the video's " + duration + " s";
    }
    if (frames !== null && fps) {
      if (prev.end_frame > frames - 1 + Math.ceil(slack * fps)) {
        return "the sections end at frame " + prev.end_frame + ", after the video's " +
               frames + " frames";
      }
    }
    if (duration !== null && fps && frames !== null) {
      var atS = prev.end_frame / fps;
      if (atS > Math.max(prev.end_s, duration) * rules.far_factor + slack) {
        return "frame " + prev.end_frame + " at " + g(fps) + " fps is " + atS.toFixed(1) +
               " s, far after the sections' end at " + prev.end_s + " s";
      }
    }
    return null;
  }

  // -- the rules of a correction (output.review_rules) ---------------------------------
  function frameTime(frame, t0, f0, fps) { return round3(t0 + (frame - f0) / fps); }

  function correctionProblem(sections, model, labels, fps) {
    if (!model.length) {
      return "review.original_sections is empty: the model's sections are lost";
    }
    for (var i = 0; i < sections.length; i++) {
      if (labels.indexOf(sections[i].label) < 0) {
        return "sections[" + i + "] is labelled '" + sections[i].label + "', which the model " +
               "does not know (labels: " + labels.join(", ") + ")";
      }
    }
    var first = sections[0], last = sections[sections.length - 1], end = model[model.length - 1];
    if (first.start_frame !== model[0].start_frame ||
        Math.abs(first.start_s - model[0].start_s) > TOL ||
        last.end_frame !== end.end_frame || Math.abs(last.end_s - end.end_s) > TOL) {
      return "the sections cover frames " + first.start_frame + "-" + last.end_frame +
             ", the model's frames " + model[0].start_frame + "-" + end.end_frame +
             ": a correction must cover the same video";
    }
    if (fps) {
      var starts = {}, t0 = model[0].start_s, f0 = model[0].start_frame;
      model.forEach(function (m) { starts[m.start_frame + "@" + round3(m.start_s)] = true; });
      for (var k = 1; k < sections.length; k++) {
        var s = sections[k];
        if (starts[s.start_frame + "@" + round3(s.start_s)]) { continue; }
        var expected = frameTime(s.start_frame, t0, f0, fps);
        if (Math.abs(s.start_s - expected) > 1 / fps + TOL) {
          return "sections[" + k + "] starts at frame " + s.start_frame + " but at " +
                 s.start_s.toFixed(3) + " s; at " + g(fps) + " fps that frame is at " +
                 expected.toFixed(3) + " s";
        }
      }
    }
    return null;
  }

  function changedProblem(changed, n) {
    var seen = {};
    for (var i = 0; i < changed.length; i++) {
      if (seen[changed[i]] || changed[i] < 0 || changed[i] >= n) {
        return "review.changed names a section twice or one that does not exist";
      }
      seen[changed[i]] = true;
    }
    return null;
  }

  function labelsOf(heads) {
    return (heads.organ && heads.organ.length ? heads.organ : [rules.quality_only_label])
      .concat([rules.unusable]);
  }

  // What a reader would refuse in the file `data` (parsed JSON); null when nothing.
  function fileProblem(data) {
    if (!TYPES.object(data) || data.schema !== rules.schema.$id) {
      return "schema is not " + rules.schema.$id;
    }
    var problem = schemaProblem(data, rules.schema, "") || invariantProblem(data);
    if (!problem && "review" in data) {
      problem = correctionProblem(data.sections, data.review.original_sections,
                                  labelsOf(data.models.heads), data.source.fps) ||
                changedProblem(data.review.changed, data.sections.length);
    }
    return problem;
  }

  return { fileProblem: fileProblem, frameTime: frameTime, labelsOf: labelsOf };
};
