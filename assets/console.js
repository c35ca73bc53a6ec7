// dirsync console: live progress of a running sync. The server pushes the progress fragment by
// server-sent events; if they cannot be had, the fragment is polled, until the run has ended.
// Without JavaScript the page refreshes itself while the run is in progress (see <noscript>).
(function () {
  "use strict";
  function follow(box) {
    if (box.getAttribute("data-state") === "done") { return; }
    var events = box.getAttribute("data-events");
    var poll = box.getAttribute("data-poll");
    function show(html) {
      box.innerHTML = html;
      var state = box.querySelector("[data-run-state]");
      if (state && state.getAttribute("data-run-state") === "done") {
        box.setAttribute("data-state", "done");
        return true;
      }
      return false;
    }
    function polling() {
      box.setAttribute("data-transport", "polling");
      var timer = setInterval(function () {
        fetch(poll, { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
          .then(function (html) { if (show(html)) { clearInterval(timer); } })
          .catch(function () { /* try again on the next tick */ });
      }, 1500);
    }
    if (!window.EventSource || !events) { polling(); return; }
    var source = new EventSource(events);
    box.setAttribute("data-transport", "sse");
    source.addEventListener("progress", function (e) {
      if (show(e.data)) { source.close(); }
    });
    source.onerror = function () {
      if (box.getAttribute("data-state") === "done") { return; }
      source.close();
      polling();
    };
  }
  document.addEventListener("DOMContentLoaded", function () {
    var boxes = document.querySelectorAll("[data-live-progress]");
    for (var i = 0; i < boxes.length; i++) { follow(boxes[i]); }
  });
})();
