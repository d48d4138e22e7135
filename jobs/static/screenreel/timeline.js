// The job page's event timeline (templates/admin/jobs/job/timeline.html): each event's time, from Unix
// milliseconds, in UTC. A file, not an inline script: the admin's Content-Security-Policy runs no inline code.
document.querySelectorAll(".sr-ms").forEach(function (el) {
  el.textContent = new Date(Number(el.dataset.ms)).toISOString().replace("T", " ").slice(0, 23) + "Z";
});
