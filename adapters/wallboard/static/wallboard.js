// The wallboard's client: the page is complete without it; this keeps it live.
// The server pushes sections of the board as Server-Sent Events ("board", "agents"):
// a JSON object of section name -> HTML (rendered and escaped by the server), each put
// into the element with that data-section. EventSource reconnects by itself.
(function () {
  "use strict";
  var url = document.body.getAttribute("data-events");
  var conn = document.getElementById("conn");

  function show(text, state) {
    if (conn) {
      conn.textContent = text;
      conn.className = "conn " + state;
    }
  }

  function apply(event) {
    var parts = JSON.parse(event.data);
    Object.keys(parts).forEach(function (name) {
      var el = document.querySelector('[data-section="' + name + '"]');
      if (el) el.innerHTML = parts[name];
    });
    show("live", "live");
  }

  // the filter menus apply themselves (without JS: the apply button)
  Array.prototype.forEach.call(document.querySelectorAll("form.filters select"), function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });
  var button = document.querySelector("form.filters button");
  if (button) button.hidden = true;

  if (!url || !window.EventSource) return;
  var source = new EventSource(url);
  source.addEventListener("board", apply);
  source.addEventListener("agents", apply);
  source.addEventListener("problem", function (event) {
    show("stale: " + JSON.parse(event.data).error, "down");
  });
  source.onopen = function () { show("live", "live"); };
  source.onerror = function () { show("reconnecting", "down"); };
})();
