// The submission form: when the page comes back with errors, move the focus to their summary,
// so a keyboard or screen-reader user starts at the list of what to fix.
(function () {
  "use strict";
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
}());
