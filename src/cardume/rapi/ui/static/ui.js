// cardume web console: a little progressive enhancement, no framework.
// A running job's log is followed with server-sent events; without JavaScript the job
// page reloads itself (a <noscript> refresh) instead.
"use strict";
(function () {
  function follow(pre) {
    if (!window.EventSource || pre.dataset.live !== "1") { return; }
    var url = "/ui/jobs/" + encodeURIComponent(pre.dataset.job) + "/events?after=" +
      encodeURIComponent(pre.dataset.serial || "0");
    var source = new EventSource(url);
    source.addEventListener("log", function (ev) {
      var entry = JSON.parse(ev.data);
      var text = (pre.textContent ? "\n" : "") + entry.time + " " + entry.message;
      pre.appendChild(document.createTextNode(text));  // text, never HTML
      pre.scrollTop = pre.scrollHeight;
    });
    source.addEventListener("end", function (ev) {
      source.close();
      var status = document.getElementById("job-status");
      if (status) { status.textContent = JSON.parse(ev.data).status; }
      var cancel = document.querySelector("form[action$='/cancel']");
      if (cancel) { cancel.remove(); }
      window.setTimeout(function () { window.location.reload(); }, 500);
    });
  }
  // An instance whose mirrors resync: its disks' section is fetched again every 3 s
  // (the same page, parsed; nothing is built from strings) until they are in sync.
  function refreshDisks(section) {
    if (section.dataset.refresh !== "1" || !window.fetch || !window.DOMParser) { return; }
    window.setTimeout(function () {
      fetch(window.location.href, {credentials: "same-origin"}).then(function (reply) {
        return reply.ok ? reply.text() : null;
      }).then(function (text) {
        if (!text) { return; }
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("disks");
        if (fresh) {
          section.replaceWith(document.importNode(fresh, true));
          refreshDisks(document.getElementById("disks"));
        }
      });
    }, 3000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var pre = document.getElementById("job-log");
    if (pre) { follow(pre); }
    var disks = document.getElementById("disks");
    if (disks) { refreshDisks(disks); }
  });
}());
