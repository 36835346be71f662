// Groundswell's embeddable petition widget. On another site:
//   <script src="https://<groundswell site>/static/widget.js" data-petition="<slug>" async></script>
// puts an iframe of <groundswell site>/w/<slug> (the live count and a sign button) where the tag
// is. The site must be listed in GROUNDSWELL_EMBED_ORIGINS, or browsers refuse the frame.
(function () {
  "use strict";
  var script = document.currentScript;
  var slug = script && script.getAttribute("data-petition");
  if (!slug) return;
  var frame = document.createElement("iframe");
  frame.src = new URL(script.src).origin + "/w/" + encodeURIComponent(slug);
  frame.title = "Petition: the live count and a sign button";
  frame.loading = "lazy";
  frame.width = script.getAttribute("data-width") || "100%";
  frame.height = script.getAttribute("data-height") || "220";
  frame.setAttribute("frameborder", "0");
  script.parentNode.insertBefore(frame, script.nextSibling);
})();
