// Live parts of the dashboard: an element with data-live="URL" has its
// content replaced by each message of the server-sent event stream at URL.
"use strict";
for (const el of document.querySelectorAll("[data-live]")) {
  const source = new EventSource(el.dataset.live);
  source.onmessage = (event) => {
    el.innerHTML = event.data;
  };
}
