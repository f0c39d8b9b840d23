// <script src="https://petitions.example.org/widget.js" async></script> on any page, then
// <petition-counter petition="slug"></petition-counter> wherever the counter goes.
// This loader only finds the service from its own address and imports the counter module.
(function () {
  var script = document.currentScript || document.querySelector('script[src$="/widget.js"]');
  var base = script ? script.src : location.href;
  import(new URL("static/counter.js", new URL("/", base)).href);
})();
