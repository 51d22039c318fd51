// The mapping editor: trigger builder, field pickers, live preview and the what-if check before saving.
// Without this script the form still works: every input is shown and "Save" saves.
(function () {
  "use strict";

  var form = document.getElementById("mapping-form");
  if (!form || !form.dataset.previewUrl) return;

  var OPERATORS = [
    ["=", "is"], ["!=", "is not"], [">", "is greater than"], [">=", "is at least"], ["<", "is less than"],
    ["<=", "is at most"], ["contains", "contains"], ["not contains", "does not contain"],
    ["starts_with", "starts with"], ["ends_with", "ends with"], ["in", "is one of"], ["not in", "is not one of"],
    ["exists", "exists"], ["not exists", "does not exist"]
  ];
  var NUMBER = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;
  var csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  var trigger = document.getElementById("id_trigger");
  var triggerError = form.querySelector("[data-trigger-error]");

  // --- Live preview ---------------------------------------------------------------------------------

  var preview = form.querySelector("[data-preview]");
  var status = preview.querySelector("[data-preview-status]");
  var payload = preview.querySelector("[data-preview-payload]");
  var previewErrors = preview.querySelector("[data-preview-errors]");
  var timer = null;
  var sequence = 0;
  var textEdited = false;

  function post(url) {
    return fetch(url, { method: "POST", body: new FormData(form), headers: { "X-CSRFToken": csrf } });
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(runPreview, 250);
  }

  function runPreview() {
    var mine = ++sequence;
    preview.classList.add("busy");
    post(form.dataset.previewUrl)
      .then(function (response) { return response.json(); })
      .then(function (data) { if (mine === sequence) showPreview(data); })
      .catch(function () { if (mine === sequence) setStatus("The preview is not available right now.", "off"); })
      .then(function () { if (mine === sequence) preview.classList.remove("busy"); });
  }

  function setStatus(text, kind) {
    status.textContent = text;
    status.className = "preview-status " + (kind || "");
  }

  function listItems(list, messages) {
    list.textContent = "";
    messages.forEach(function (message) {
      var item = document.createElement("li");
      item.textContent = message;
      list.appendChild(item);
    });
  }

  function showPreview(data) {
    triggerError.textContent = data.trigger_error || "";
    triggerError.hidden = !data.trigger_error;
    // Live errors replace the ones the server rendered with the last submitted form.
    form.querySelectorAll("[data-testid=field-error], [data-testid=mapping-error]").forEach(function (old) { old.remove(); });
    form.querySelectorAll(".field-row").forEach(function (row) {
      var messages = (data.field_errors || {})[row.dataset.field] || [];
      var box = row.querySelector("[data-live-errors]");
      box.textContent = "";
      messages.forEach(function (message) {
        var line = document.createElement("p");
        line.className = "error";
        line.textContent = message;
        box.appendChild(line);
      });
      row.classList.toggle("has-error", messages.length > 0);
    });
    if (textEdited) {
      textEdited = false;
      showBuilder(data.builder);
    }
    payload.hidden = true;
    if (data.event_error) {
      setStatus(data.event_error, "off");
    } else if (data.trigger_error) {
      setStatus("Fix the trigger to see whether this event matches.", "off");
    } else if (!data.matched) {
      setStatus("Does not match the trigger: nothing is sent for this event.", "muted");
    } else if (data.payload === null || data.payload === undefined) {
      setStatus("Matches the trigger, but the fields have errors.", "off");
    } else {
      setStatus("Matches the trigger. This is what is sent:", "ok");
      payload.textContent = JSON.stringify(data.payload, null, 2);
      payload.hidden = false;
    }
    listItems(previewErrors, (data.mapping_errors || []).concat(data.errors || []));
  }

  // --- Field rows: kinds of value, pickers, object keys ---------------------------------------------------

  function applyMode(row) {
    var mode = row.querySelector("[data-mode]").value;
    row.querySelectorAll("[data-show]").forEach(function (part) {
      part.hidden = part.dataset.show.split(" ").indexOf(mode) < 0;
    });
    var input = row.querySelector("[data-value]");
    input.placeholder = { path: "e.g. properties.total", literal: "a fixed value", template: "e.g. {{traits.first_name}} {{traits.last_name}}" }[mode] || "";
    if (mode === "path") input.setAttribute("list", "event-fields"); else input.removeAttribute("list");
  }

  function wirePicker(pick, input, mode, after) {
    if (!pick) return;
    pick.hidden = false;
    pick.addEventListener("change", function () {
      if (!pick.value) return;
      input.value = pick.value;
      mode.value = "path";
      pick.value = "";
      after();
      schedule();
    });
  }

  function wireKeyRow(keyRow) {
    var kmode = keyRow.querySelector("select[name$='.kmode']");
    var kvalue = keyRow.querySelector("input[name$='.kvalue']");
    wirePicker(keyRow.querySelector("[data-pick]"), kvalue, kmode, function () {
      var key = keyRow.querySelector("input[name$='.key']");
      // A key named after the field it takes is the usual choice; keep a name already typed.
      if (!key.value) key.value = kvalue.value.split(".").pop();
    });
    var remove = keyRow.querySelector("[data-remove-key]");
    remove.hidden = false;
    remove.addEventListener("click", function () {
      var body = keyRow.parentNode;
      if (body.querySelectorAll("[data-key-row]").length > 1) keyRow.remove();
      else keyRow.querySelectorAll("input").forEach(function (input) { input.value = ""; });
      schedule();
    });
  }

  form.querySelectorAll(".field-row").forEach(function (row) {
    var mode = row.querySelector("[data-mode]");
    var input = row.querySelector("[data-value]");
    mode.addEventListener("change", function () { applyMode(row); });
    applyMode(row);
    wirePicker(row.querySelector(".value-line > [data-pick]"), input, mode, function () { applyMode(row); });
    var keyRows = row.querySelector("[data-key-rows]");
    if (keyRows) {
      var template = keyRows.lastElementChild.cloneNode(true);
      keyRows.querySelectorAll("[data-key-row]").forEach(wireKeyRow);
      var add = row.querySelector("[data-add-key]");
      add.hidden = false;
      add.addEventListener("click", function () {
        var fresh = template.cloneNode(true);
        fresh.querySelectorAll("input").forEach(function (field) { field.value = ""; });
        keyRows.appendChild(fresh);
        wireKeyRow(fresh);
        fresh.querySelector("input").focus();
      });
    }
  });

  // --- Trigger builder ------------------------------------------------------------------------------

  var builder = form.querySelector("[data-builder]");
  var rowsBox = builder.querySelector("[data-builder-rows]");
  var join = builder.querySelector("[data-join]");
  var note = builder.querySelector("[data-builder-note]");
  var empty = builder.querySelector("[data-builder-empty]");

  function literal(text) {
    var value = text.trim();
    if (value === "") return '""';
    if (/^(true|false|null)$/.test(value) || NUMBER.test(value) || /^(".*"|'.*'|\[.*\])$/.test(value)) return value;
    return JSON.stringify(value);
  }

  function listLiteral(text) {
    var value = text.trim();
    if (value.charAt(0) === "[") return value;
    return "[" + value.split(",").filter(function (part) { return part.trim(); }).map(literal).join(", ") + "]";
  }

  function conditionText() {
    var parts = [];
    rowsBox.querySelectorAll(".condition-row").forEach(function (row) {
      var field = row.querySelector("[data-cond-field]").value.trim();
      var op = row.querySelector("[data-cond-op]").value;
      var value = row.querySelector("[data-cond-value]").value;
      if (!field) return;
      if (op === "exists" || op === "not exists") parts.push(field + " " + op);
      else parts.push(field + " " + op + " " + (op === "in" || op === "not in" ? listLiteral(value) : literal(value)));
    });
    if (!parts.length) return "true";
    return parts.join(join.value === "any" ? " or " : " and ");
  }

  function writeTrigger() {
    trigger.value = conditionText();
    empty.hidden = rowsBox.children.length > 0;
    note.hidden = true;
    schedule();
  }

  function conditionRow(data) {
    var row = document.createElement("div");
    row.className = "condition-row";
    row.setAttribute("data-testid", "condition-row");
    var field = document.createElement("input");
    field.setAttribute("list", "event-fields");
    field.setAttribute("aria-label", "Field");
    field.setAttribute("data-cond-field", "");
    field.className = "mono";
    field.placeholder = "field, e.g. event";
    field.value = data.field || "";
    var op = document.createElement("select");
    op.setAttribute("aria-label", "Operator");
    op.setAttribute("data-cond-op", "");
    OPERATORS.forEach(function (pair) {
      var option = document.createElement("option");
      option.value = pair[0];
      option.textContent = pair[1];
      op.appendChild(option);
    });
    op.value = data.op || "=";
    var value = document.createElement("input");
    value.setAttribute("aria-label", "Value");
    value.setAttribute("data-cond-value", "");
    value.placeholder = "value";
    value.value = data.value || "";
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "link";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", "Remove this condition");
    function syncValue() {
      value.hidden = op.value === "exists" || op.value === "not exists";
      value.placeholder = op.value === "in" || op.value === "not in" ? "values, separated by commas" : "value";
    }
    syncValue();
    [field, value].forEach(function (input) { input.addEventListener("input", writeTrigger); });
    op.addEventListener("change", function () { syncValue(); writeTrigger(); });
    remove.addEventListener("click", function () { row.remove(); writeTrigger(); });
    row.append(field, op, value, remove);
    return row;
  }

  function showBuilder(state) {
    rowsBox.textContent = "";
    note.hidden = !!state;
    rowsBox.hidden = !state;
    join.parentNode.hidden = !state;
    if (!state) {
      empty.hidden = true;
      return;
    }
    join.value = state.join;
    state.rows.forEach(function (data) { rowsBox.appendChild(conditionRow(data)); });
    empty.hidden = state.rows.length > 0;
  }

  builder.hidden = false;
  showBuilder(JSON.parse(document.getElementById("builder-rows").textContent));
  join.addEventListener("change", writeTrigger);
  builder.querySelector("[data-add-condition]").addEventListener("click", function () {
    if (rowsBox.hidden) showBuilder({ join: "all", rows: [] });
    var row = conditionRow({});
    rowsBox.appendChild(row);
    row.querySelector("input").focus();
    writeTrigger();
  });
  trigger.addEventListener("input", function () { textEdited = true; schedule(); });

  // Any other change in the form refreshes the preview.
  form.addEventListener("input", function (event) {
    if (event.target !== trigger && !builder.contains(event.target)) schedule();
  });
  form.addEventListener("change", function (event) {
    if (!builder.contains(event.target)) schedule();
  });

  preview.hidden = false;
  runPreview();

  // --- Save: the what-if check first ----------------------------------------------------------------------

  var dialog = document.querySelector("[data-what-if]");
  if (!dialog || !form.dataset.whatIfUrl) return;
  var confirmed = false;

  function saveNow() {
    confirmed = true;
    if (dialog.open) dialog.close();
    form.submit();
  }

  form.addEventListener("submit", function (event) {
    if (confirmed) return;
    event.preventDefault();
    var button = form.querySelector("[data-save]");
    button.disabled = true;
    post(form.dataset.whatIfUrl)
      .then(function (response) {
        // A form the server refuses is submitted as it is, so its errors show next to the fields.
        if (!response.ok) return saveNow();
        return response.text().then(function (html) {
          dialog.querySelector("[data-what-if-body]").innerHTML = html;
          dialog.showModal();
        });
      })
      .catch(saveNow)
      .then(function () { button.disabled = false; });
  });
  dialog.querySelector("[data-confirm-save]").addEventListener("click", saveNow);
  dialog.querySelector("[data-keep-editing]").addEventListener("click", function () { dialog.close(); });
})();
