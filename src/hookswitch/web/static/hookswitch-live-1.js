/* hookswitch portal, the Calls page: keep the newest view of the user's calls.
   A command's answer (hx-post) and a message of the page's stream can cross on the way:
   each live calls fragment says when the server rendered it (data-rendered-us), and the
   rows of one rendered before the fragment shown are not swapped in. */
(function () {
  "use strict";
  function stamp(html) {
    var found = /data-rendered-us="(\d+)"/.exec(html || "");
    return found ? Number(found[1]) : 0;
  }
  function shown() {
    var element = document.querySelector("#live [data-rendered-us]");
    return element ? Number(element.getAttribute("data-rendered-us")) : 0;
  }
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "live" && stamp(event.detail.serverResponse) < shown()) {
      // Older than the rows shown: keep them; its refusal (out of band) still shows.
      event.detail.swapOverride = "none";
    }
  });
  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    if (stamp(event.detail.data) < shown()) {
      event.preventDefault();
    }
  });
})();
