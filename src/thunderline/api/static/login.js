/* `thunderline serve` prints a link with the token in the URL fragment (never sent to the
   server): fill the form from it and sign in, then drop it from the address bar. */
"use strict";
(function () {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (!match) return;
  history.replaceState(null, "", window.location.pathname + window.location.search);
  document.getElementById("token").value = decodeURIComponent(match[1]);
  document.getElementById("login-form").submit();
})();
