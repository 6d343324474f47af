// The job page while the job runs: the serial console streamed from the
// server (server-sent events) as the worker sends it, and the state,
// results and events re-read every few seconds, until the job ends.
(function () {
  "use strict";
  var box = document.getElementById("console-box");
  if (!box || box.dataset.live !== "1") {
    return;
  }
  var pre = document.getElementById("console");
  var none = document.getElementById("console-none");
  var job = box.dataset.job;
  function refresh() {
    return fetch(location.href, {credentials: "same-origin"}).then(function (r) {
      return r.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var now = document.getElementById("live"), next = doc.getElementById("live");
      if (now && next) {
        now.replaceWith(next);
      }
    }).catch(function () {});
  }
  var timer = setInterval(refresh, 3000);
  var es = new EventSource("/ui/jobs/" + encodeURIComponent(job) + "/console?after=" + encodeURIComponent(box.dataset.after));
  es.addEventListener("line", function (ev) {
    var l = JSON.parse(ev.data);
    var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent += (pre.textContent ? "\n" : "") + l.line;
    pre.hidden = false;
    if (none) {
      none.hidden = true;
    }
    if (atEnd) {
      pre.scrollTop = pre.scrollHeight;
    }
  });
  es.addEventListener("end", function () {
    es.close();
    clearInterval(timer);
    box.dataset.live = "0";
    refresh();
  });
})();
