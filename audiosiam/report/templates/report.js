"use strict";
// Sorting, filtering and play buttons of an audiosiam report. No framework: the page must work from disk.
(function () {
  function cellValue(row, index) {
    const cell = row.cells[index];
    return cell ? (cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim()) : "";
  }

  function sortBy(table, index, header) {
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const values = rows.map((row) => cellValue(row, index));
    const numeric = values.every((v) => v === "" || !Number.isNaN(Number(v)));
    const ascending = header.getAttribute("aria-sort") !== "ascending";
    const order = rows.map((row, i) => i).sort((a, b) => {
      const x = values[a], y = values[b];
      if (x === "" || y === "") return (x === "") - (y === "") || a - b; // empty cells last
      const c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return (ascending ? c : -c) || a - b;
    });
    for (const th of header.parentElement.children) th.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    for (const i of order) body.appendChild(rows[i]);
  }

  function applyFilters(form) {
    const table = document.getElementById(form.dataset.table);
    const text = (form.elements.text ? form.elements.text.value : "").trim().toLowerCase();
    const label = form.elements.label ? form.elements.label.value : "";
    const below = form.elements.below && form.elements.below.value !== "" ? Number(form.elements.below.value) : null;
    let shown = 0;
    const rows = Array.from(table.tBodies[0].rows);
    for (const row of rows) {
      const number = row.dataset.number === undefined || row.dataset.number === "" ? null : Number(row.dataset.number);
      const keep = (!text || row.textContent.toLowerCase().includes(text)) &&
        (!label || row.dataset.label === label) &&
        (below === null || (number !== null && number < below));
      row.hidden = !keep;
      shown += keep ? 1 : 0;
    }
    const count = form.querySelector("output");
    if (count) count.value = shown + " of " + rows.length + " rows shown";
  }

  function play(button) {
    const audio = document.getElementById(button.dataset.audio);
    if (!audio) return;
    for (const other of document.querySelectorAll("audio")) if (other !== audio) other.pause();
    if (audio.paused) {
      audio.currentTime = 0;
      audio.play().catch(() => {}); // a browser may refuse until the page is interacted with
    } else {
      audio.pause();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const table of document.querySelectorAll("table.sortable")) {
      const headers = table.tHead.rows[0].cells;
      for (let i = 0; i < headers.length; i++) {
        const button = headers[i].querySelector("button.sort");
        if (button) button.addEventListener("click", () => sortBy(table, i, headers[i]));
      }
    }
    for (const form of document.querySelectorAll("form.filters")) {
      form.addEventListener("input", () => applyFilters(form));
      form.addEventListener("submit", (event) => event.preventDefault());
      applyFilters(form);
    }
    for (const button of document.querySelectorAll("button.play")) {
      button.addEventListener("click", () => play(button));
    }
    for (const audio of document.querySelectorAll("audio")) {
      const mark = (pressed) => {
        for (const b of document.querySelectorAll('button.play[data-audio="' + audio.id + '"]')) {
          b.setAttribute("aria-pressed", pressed);
        }
      };
      audio.addEventListener("play", () => mark("true"));
      audio.addEventListener("pause", () => mark("false"));
    }
    // "/" jumps to the first filter box, as in many sites' search
    document.addEventListener("keydown", (event) => {
      const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
      if (event.key === "/" && !typing) {
        const box = document.querySelector("form.filters input[name=text]");
        if (box) { event.preventDefault(); box.focus(); }
      }
    });
  });
})();
