// Live status without reloading: the checkout streams the live part of the page
// (server-rendered, escaped) over server-sent events; this script swaps it in,
// counts down to expiry and copies the address. Without JavaScript the page
// refreshes itself instead (a <noscript> meta refresh).
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live) return;

  function countdown() {
    var el = document.getElementById("countdown");
    if (!el) return;
    var left = Math.max(0, Math.floor((Date.parse(el.getAttribute("datetime")) - Date.now()) / 1000));
    var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    el.textContent = (h ? h + ":" : "") + (h && m < 10 ? "0" : "") + m + ":" + (s < 10 ? "0" : "") + s;
  }

  function wire() {
    var copy = document.getElementById("copy");
    var address = document.getElementById("address");
    if (copy && address) {
      copy.addEventListener("click", function () {
        address.select();
        var done = function () { copy.textContent = copy.getAttribute("data-copied"); };
        if (navigator.clipboard) navigator.clipboard.writeText(address.value).then(done, done);
        else { document.execCommand("copy"); done(); }
      });
    }
    countdown();
  }

  wire();
  setInterval(countdown, 1000);
  if (live.getAttribute("data-final") === "true" || !window.EventSource) return;
  var source = new EventSource(live.getAttribute("data-live"));
  source.addEventListener("update", function (event) {
    live.innerHTML = event.data;  // server-rendered and escaped by the checkout
    wire();
  });
  source.addEventListener("end", function () { source.close(); });
})();
