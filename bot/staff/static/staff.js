// The staff console's only script (the pages' Content-Security-Policy allows no inline script):
// a form with data-confirm="question" asks before it is sent.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form && form.getAttribute ? form.getAttribute("data-confirm") : null;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
