// Live parts of the dashboard: an element with data-live="URL" has its
// content replaced by each message of the server-sent event stream at URL;
// a "parts" message carries table cells with ids, each replacing the cell
// of the same id, so the rest (buttons under the pointer) stays.
"use strict";
for (const el of document.querySelectorAll("[data-live]")) {
  const source = new EventSource(el.dataset.live);
  source.onmessage = (event) => {
    el.innerHTML = event.data;
  };
  source.addEventListener("parts", (event) => {
    const parts = document.createElement("template");
    parts.innerHTML = "<table><tbody><tr>" + event.data + "</tr></tbody></table>";
    for (const part of parts.content.querySelectorAll("[id]")) {
      document.getElementById(part.id)?.replaceWith(part);
    }
  });
}
