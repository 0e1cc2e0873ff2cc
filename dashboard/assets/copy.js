// trustgate dashboard: a "Copy" button above each copyable block. Without JavaScript the text
// is there to select by hand.
document.querySelectorAll("pre.copyable").forEach(function (pre) {
  if (!navigator.clipboard) { return; }
  var button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = "Copy";
  button.setAttribute("aria-label", "Copy " + (pre.id || "text"));
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(pre.textContent).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    });
  });
  pre.parentNode.insertBefore(button, pre);
});
