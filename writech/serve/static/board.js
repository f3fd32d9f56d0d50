// The live class board: draws the board's JSON, then fetches it again every
// few seconds. Only text nodes and SVG attributes are written (never HTML), so
// ids and characters from the events cannot inject markup; the page's
// Content-Security-Policy allows this file and same-origin fetches only.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const root = document.getElementById("board");
  const labels = JSON.parse(document.getElementById("board-labels").textContent);
  const source = root.dataset.source;
  let board = JSON.parse(document.getElementById("board-data").textContent);

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const who = (s) => s.name || s.student_id;
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, key) => values[key]);

  function renderStudents() {
    for (const state of ["writing", "silent", "absent"]) {
      document.getElementById(`count-${state}`).textContent = board.counts[state];
      const list = document.getElementById(`students-${state}`);
      const items = board.students
        .filter((s) => s.state === state)
        .map((s) => {
          const item = element("li", "student");
          item.dataset.student = s.student_id;
          item.title = s.student_id;
          item.append(element("span", "name", who(s)));
          let detail = "";
          if (state === "writing") {
            detail = fill(labels.strokes_recent, { minutes: board.recent_minutes, strokes: s.recent_strokes });
          }
          if (state === "silent") detail = fill(labels.silent_for, { minutes: s.silent_minutes });
          if (detail) item.append(element("span", "detail", detail));
          return item;
        });
      list.replaceChildren(...items);
    }
  }

  // Strokes as bars (left axis), stroke-order accuracy as a line (right axis, 0-100 %).
  function renderChart() {
    const chart = board.chart;
    const figure = document.getElementById("chart");
    document.getElementById("chart-empty").hidden = chart.minutes.length > 0;
    figure.replaceChildren();
    figure.dataset.minutes = chart.minutes.length;
    if (!chart.minutes.length) return;
    const [width, height] = [960, 280];
    const box = { left: 52, right: 52, top: 30, bottom: 30 };
    const plotWidth = width - box.left - box.right;
    const plotHeight = height - box.top - box.bottom;
    const span = Math.max(chart.end - chart.start, chart.window_seconds);
    const x = (at) => box.left + ((at - chart.start) / span) * plotWidth;
    const most = Math.max(1, ...chart.minutes.map((m) => m.strokes));
    const top = niceCeiling(most);
    const yStrokes = (value) => box.top + plotHeight * (1 - value / top);
    const yPercent = (value) => box.top + plotHeight * (1 - value / 100);

    for (const fraction of [0, 0.5, 1]) {
      const y = box.top + plotHeight * (1 - fraction);
      figure.append(svg("line", { class: "grid", x1: box.left, x2: width - box.right, y1: y, y2: y }));
      figure.append(svg("text", { class: "axis strokes", x: box.left - 6, y: y + 4, "text-anchor": "end" }, Math.round(top * fraction)));
      figure.append(svg("text", { class: "axis accuracy", x: width - box.right + 6, y: y + 4 }, `${Math.round(100 * fraction)}%`));
    }
    for (const tick of chart.ticks) {
      figure.append(svg("text", { class: "axis time", x: x(tick.at), y: height - 10, "text-anchor": "middle" }, tick.label));
    }
    const barWidth = Math.max(1, x(chart.start + chart.window_seconds) - x(chart.start) - 1);
    for (const minute of chart.minutes) {
      const y = yStrokes(minute.strokes);
      const bar = svg("rect", { class: "bar", x: x(minute.start), y, width: barWidth, height: box.top + plotHeight - y });
      bar.dataset.start = minute.start;
      bar.append(svg("title", {}, `${minute.label}  ${labels.strokes} ${minute.strokes}`));
      figure.append(bar);
    }
    // the accuracy line breaks where a window had no stroke-order check
    let points = [];
    const flush = () => {
      if (points.length > 1) figure.append(svg("polyline", { class: "accuracy", points: points.join(" ") }));
      points = [];
    };
    for (const minute of chart.minutes) {
      if (minute.stroke_order_avg === null) { flush(); continue; }
      const [cx, cy] = [x(minute.start) + barWidth / 2, yPercent(minute.stroke_order_avg)];
      points.push(`${cx},${cy}`);
      const dot = svg("circle", { class: "accuracy", cx, cy, r: 2.5 });
      dot.append(svg("title", {}, `${minute.label}  ${labels.accuracy} ${minute.stroke_order_avg}%`));
      figure.append(dot);
    }
    flush();
    const legend = svg("g", { class: "legend" });
    legend.append(svg("rect", { class: "bar", x: box.left, y: 2, width: 10, height: 10 }));
    legend.append(svg("text", { x: box.left + 14, y: 11 }, labels.strokes));
    legend.append(svg("circle", { class: "accuracy", cx: box.left + 140, cy: 7, r: 4 }));
    legend.append(svg("text", { x: box.left + 148, y: 11 }, labels.accuracy));
    figure.append(legend);
  }

  function niceCeiling(value) {
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function renderCharacters() {
    const rows = board.characters.map((c) => {
      const row = element("tr", c.mean_score < board.weak_score ? "weak" : "");
      row.dataset.character = c.character;
      row.append(element("td", "character", c.character));
      row.append(element("td", "num", c.mean_score.toFixed(1)));
      row.append(element("td", "num", c.attempts));
      const writers = element("td", "writers");
      for (const w of c.writers) {
        const writer = element("span", "writer", `${who(w)} ${w.mean_score.toFixed(0)}`);
        writer.title = `${w.student_id}: ${w.attempts} × ${labels.mean_score} ${w.mean_score}`;
        writers.append(writer);
      }
      row.append(writers);
      return row;
    });
    document.querySelector("#characters tbody").replaceChildren(...rows);
    document.getElementById("characters").hidden = rows.length === 0;
    document.getElementById("characters-empty").hidden = rows.length > 0;
  }

  function render() {
    const asOf = document.getElementById("as-of");
    asOf.textContent = board.as_of_label;
    asOf.dateTime = new Date(board.as_of * 1000).toISOString();
    renderStudents();
    renderChart();
    renderCharacters();
  }

  async function refresh() {
    try {
      const response = await fetch(source, { cache: "no-store", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      board = await response.json();
      render();
      document.getElementById("stale").hidden = true;
    } catch {
      document.getElementById("stale").hidden = false; // shown on the page; the next try may work
    } finally {
      setTimeout(refresh, board.refresh_seconds * 1000);
    }
  }

  render();
  setTimeout(refresh, board.refresh_seconds * 1000);
})();
