// Token Router dashboard: the usage page. Keeps the "Download CSV" link on the filters
// as they are being changed (the page works without it: the link follows the last "Show").
(function () {
  'use strict';
  var form = document.getElementById('usage-filters');
  var link = document.getElementById('usage-csv');
  if (!form || !link) return;
  function sync() {
    var query = [];
    ['from', 'to', 'group_by'].forEach(function (name) {
      var field = form.elements[name];
      if (field && field.value) query.push(name + '=' + encodeURIComponent(field.value));
    });
    link.href = '/dashboard/usage.csv' + (query.length ? '?' + query.join('&') : '');
  }
  form.addEventListener('change', sync);
  form.addEventListener('input', sync);
})();
