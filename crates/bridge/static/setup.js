// Signing in from inside the Salesforce iframe: Salesforce's login page cannot be framed, so
// sign-in runs in a popup. When it ends, the popup hands a one-time code to this frame, which
// exchanges it for a session cookie of its own (the iframe's cookies are partitioned apart
// from the popup's). Without JavaScript the sign-in link opens a tab that works on its own.
(function () {
  var handoff = document.getElementById("handoff");
  if (handoff && window.opener) {
    window.opener.postMessage({ byocHandoff: handoff.getAttribute("data-code") }, window.location.origin);
    window.close();
    return;
  }
  // Signed in inside the frame itself (no sign-in window opened it): go on to the page asked for.
  if (handoff && handoff.getAttribute("data-next")) {
    window.location.replace(handoff.getAttribute("data-next"));
    return;
  }
  // Copy buttons exist only where they work: shown by this script, hidden without it.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
        button.textContent = "Copied";
      });
    });
  });
  document.querySelectorAll("a[data-popup]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      if (window.open(link.href, "byoc-signin", "popup,width=520,height=700")) {
        event.preventDefault();
      }
    });
  });
  window.addEventListener("message", function (event) {
    if (event.origin !== window.location.origin || !event.data || !event.data.byocHandoff) return;
    window.location.href = "/setup/handoff?code=" + encodeURIComponent(event.data.byocHandoff);
  });
})();
