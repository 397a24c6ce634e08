/*
 * Marugoto: operators' dashboard (成果把握項目ダッシュボード). Plain ES2020, no build step.
 *
 * Reads the access token and the scope from the URL fragment, which browsers never send to a server:
 *   /dashboard#token=…&municipality=242080&fiscal_year=2026[&month=5]
 * keeps the token in sessionStorage (this tab only) and takes it out of the address bar, then fetches
 * GET v1/indicators with `Authorization: Bearer`, and draws the report with Chart.js (bundled).
 *
 * For tests and tools: every chart's numbers are in its <canvas data-values="…"> (JSON; the API's
 * numbers as they came), the figure's data-state is "drawn" or "empty", and <body> gets
 * data-ready="true" once everything is drawn, or data-error="…" when it cannot be.
 */
"use strict";

(() => {
  const TOKEN_KEY = "marugoto.dashboard.token";
  const FONT = '"Noto Sans CJK JP", "Noto Sans JP", "Hiragino Sans", "Yu Gothic", Meiryo, system-ui, sans-serif';
  const COLORS = ["#2f6f9f", "#e07b39", "#3f9f6f", "#9f3f6f", "#8c7ae6", "#c9a227", "#5f7f8f", "#d94f4f"];

  const MEETING_INDICATORS = [
    ["OPS-MEETINGS-HELD", "会議の開催回数"],
    ["M5", "福祉以外の部門の出席回数（M5）"],
    ["M13", "多機関が連携した事例数（M13）"],
  ];

  const numberFormat = new Intl.NumberFormat("ja-JP", { maximumFractionDigits: 2 });
  const charts = new Map();

  class DashboardError extends Error {}

  const isNumber = (x) => typeof x === "number" && Number.isFinite(x);
  const formatNumber = (x) => (isNumber(x) ? numberFormat.format(x) : "—");
  // `attainment` is already a percentage (100 × value / target), as the API computes it.
  const formatPercent = (x) => (isNumber(x) ? `${numberFormat.format(x)}%` : "—");
  // The API labels every key of a breakdown (services/metrics/labels.py), so the page and the exports agree.
  const dimensionLabel = (indicator, key) => indicator?.labels?.[key] ?? key;
  const has = (object, key) =>
    object !== null && typeof object === "object" && Object.prototype.hasOwnProperty.call(object, key);

  function readParams() {
    const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    let token = fragment.get("token");
    if (token) {
      try {
        window.sessionStorage.setItem(TOKEN_KEY, token);
      } catch {
        // Storage may be disabled: the token then lives only in this page load.
      }
      fragment.delete("token");
      const rest = fragment.toString();
      const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : "");
      window.history.replaceState(null, "", url);
    } else {
      try {
        token = window.sessionStorage.getItem(TOKEN_KEY);
      } catch {
        token = null;
      }
    }
    return {
      token,
      municipality: fragment.get("municipality") ?? "",
      fiscalYear: fragment.get("fiscal_year") ?? "",
      month: fragment.get("month") ?? "",
    };
  }

  function validate(params) {
    const problems = [];
    if (!params.token) {
      problems.push(
        "アクセストークンがありません。intake の POST /v1/token で取得したトークンを URL の「#token=…」で渡してください。",
      );
    }
    if (!/^\d{6}$/.test(params.municipality)) {
      problems.push("市町村コード（6桁の全国地方公共団体コード）を URL の「#municipality=…」で指定してください。");
    }
    if (params.fiscalYear && !/^\d{4}$/.test(params.fiscalYear)) {
      problems.push("年度（fiscal_year）は西暦4桁で指定してください（例: 2026）。");
    }
    if (params.month && !/^(?:[1-9]|1[0-2])$/.test(params.month)) {
      problems.push("月（month）は 1〜12 で指定してください。");
    }
    if (problems.length > 0) throw new DashboardError(problems.join("\n"));
  }

  async function problemDetail(response) {
    try {
      const body = await response.json();
      return typeof body.detail === "string" ? body.detail : "";
    } catch {
      return "";
    }
  }

  async function fetchReport(params) {
    const query = new URLSearchParams({ municipality: params.municipality });
    if (params.fiscalYear) query.set("fiscal_year", params.fiscalYear);
    if (params.month) query.set("month", params.month);
    let response;
    try {
      response = await fetch(`v1/indicators?${query}`, {
        headers: { Authorization: `Bearer ${params.token}`, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
    } catch {
      throw new DashboardError("サーバーに接続できませんでした。ネットワークとサービスの状態を確認してください。");
    }
    if (!response.ok) {
      const detail = await problemDetail(response);
      const messages = {
        401: "アクセストークンが無効か、有効期限が切れています。intake の POST /v1/token で取得し直してください。",
        403: "このトークンには運用担当（operator）の権限がありません。",
        422: "指定した条件が正しくありません。",
      };
      const message = messages[response.status] ?? `サーバーがエラーを返しました（HTTP ${response.status}）。`;
      throw new DashboardError(detail ? `${message}\n（${detail}）` : message);
    }
    const report = await response.json();
    if (!report || !Array.isArray(report.indicators)) {
      throw new DashboardError("サーバーの応答が想定した形式ではありません。");
    }
    return report;
  }

  function renderHeader(report, params) {
    const code = report.municipality_code ?? params.municipality;
    const municipality = report.municipality_name ? `${report.municipality_name}（${code}）` : code;
    const label = report.fiscal_year_label ?? `${report.fiscal_year}年度`;
    document.getElementById("municipality").textContent = municipality;
    document.getElementById("fiscal-year").textContent = label;
    const month = has(report, "month") ? report.month : params.month || null;
    document.getElementById("month-row").hidden = month === null || month === "";
    document.getElementById("month").textContent = month ? `${month}月` : "—";
    document.title = `成果把握項目ダッシュボード｜${municipality}｜${label}`;
  }

  function cell(row, text, className, title) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    if (title) td.title = title;
    row.append(td);
    return td;
  }

  function renderTable(report) {
    const withTarget = report.indicators.some((i) => has(i, "target"));
    const withAttainment = report.indicators.some((i) => has(i, "attainment"));
    const table = document.getElementById("indicator-table");
    const headings = [
      ["ID", ""],
      ["指標名", ""],
      ["値", "num"],
    ];
    if (withTarget) headings.push(["目標", "num"]);
    if (withAttainment) headings.push(["達成率", "num"]);
    const head = table.querySelector("thead tr");
    head.replaceChildren(
      ...headings.map(([text, className]) => {
        const th = document.createElement("th");
        th.scope = "col";
        th.textContent = text;
        if (className) th.className = className;
        return th;
      }),
    );
    const body = table.querySelector("tbody");
    body.replaceChildren();
    for (const indicator of report.indicators) {
      const row = document.createElement("tr");
      row.dataset.indicator = indicator.id;
      cell(row, indicator.id, "id");
      cell(row, indicator.name_ja ?? indicator.id, "", indicator.name_en ?? "");
      const value = indicator.value;
      if (indicator.applicable === false) {
        // Not "—" nor 0: nothing was to be counted here (e.g. 支援会議 where the 重層的支援体制整備事業 is not run).
        cell(row, "対象外", "num not-applicable", indicator.definition ?? "この市町村・年度には該当しません");
      } else {
        const shown = indicator.unit === "percent" ? formatPercent(value) : formatNumber(value);
        cell(row, shown, isNumber(value) ? "num" : "num missing", isNumber(value) ? "" : "値がありません");
      }
      if (withTarget) targetCell(row, indicator);
      if (withAttainment) {
        const attainment = indicator.attainment;
        cell(row, formatPercent(attainment), isNumber(attainment) ? "num" : "num missing");
      }
      body.append(row);
    }
  }

  // The target the year is reported against (in force when it began), and each later revision beside it.
  function targetCell(row, indicator) {
    const revisions = Array.isArray(indicator.target_revisions) ? indicator.target_revisions : [];
    if (!isNumber(indicator.target)) {
      cell(row, formatNumber(indicator.target), "num missing");
      return;
    }
    const latest = revisions.at(-1);
    const text = latest ? `${formatNumber(indicator.target)}（改定: ${formatNumber(latest.value)}）` : formatNumber(indicator.target);
    const detail = revisions
      .map((r) => `${String(r.set_at).slice(0, 10)} ${formatNumber(r.value)}（${r.set_by}、理由: ${r.reason}）`)
      .join("\n");
    cell(row, text, revisions.length ? "num revised" : "num", detail ? `目標の改定\n${detail}` : "");
  }

  function drawChart(id, { values, source, hasData, emptyText, config, summary }) {
    const figure = document.getElementById(id);
    const canvas = figure.querySelector("canvas");
    const empty = figure.querySelector(".empty");
    canvas.dataset.values = JSON.stringify(values);
    canvas.dataset.source = source;
    charts.get(id)?.destroy();
    charts.delete(id);
    figure.dataset.state = hasData ? "drawn" : "empty";
    figure.querySelector(".chart-box").hidden = !hasData;
    empty.hidden = hasData;
    empty.textContent = emptyText;
    canvas.textContent = summary; // fallback content for screen readers
    if (hasData) charts.set(id, new window.Chart(canvas, config));
  }

  const nonZero = (numbers) => numbers.some((x) => isNumber(x) && x !== 0);
  const summarize = (labels, numbers, unit = "") =>
    labels.map((label, i) => `${label}: ${formatNumber(numbers[i])}${unit}`).join("、");

  function baseOptions(extra = {}) {
    return { animation: false, responsive: true, maintainAspectRatio: false, ...extra };
  }

  function barConfig(labels, numbers, datasetLabel, { horizontal = false, unit = "", counts = true, tooltip = {} } = {}) {
    const valueAxis = {
      beginAtZero: true,
      ticks: counts ? { precision: 0 } : {},
      title: { display: Boolean(unit), text: unit },
    };
    return {
      type: "bar",
      data: {
        labels,
        datasets: [{ label: datasetLabel, data: numbers, backgroundColor: labels.map((_, i) => COLORS[i % COLORS.length]) }],
      },
      options: baseOptions({
        indexAxis: horizontal ? "y" : "x",
        plugins: { legend: { display: false }, tooltip },
        scales: horizontal ? { x: valueAxis } : { y: valueAxis },
      }),
    };
  }

  // A chart of one indicator's by_dimension; `ids` are tried in order.
  function dimensionChart(chartId, indicators, ids, { kind, datasetLabel }) {
    const indicator = ids.map((id) => indicators.get(id)).find(Boolean);
    const values = indicator?.by_dimension ?? {};
    const keys = Object.keys(values);
    const labels = keys.map((key) => dimensionLabel(indicator, key));
    const numbers = keys.map((k) => values[k]);
    const shares = indicator?.shares ?? {};
    const tooltip = {
      callbacks: {
        label: (item) => {
          const share = shares[keys[item.dataIndex]];
          return `${item.label}: ${formatNumber(item.raw)}件${isNumber(share) ? `（${formatNumber(share)}%）` : ""}`;
        },
      },
    };
    const config =
      kind === "doughnut"
        ? {
            type: "doughnut",
            data: { labels, datasets: [{ label: datasetLabel, data: numbers, backgroundColor: COLORS }] },
            options: baseOptions({ plugins: { legend: { position: "right" }, tooltip } }),
          }
        : barConfig(labels, numbers, datasetLabel, { horizontal: true, tooltip });
    drawChart(chartId, {
      values,
      source: indicator?.id ?? "",
      hasData: nonZero(numbers),
      emptyText: indicator ? "データがありません（0件）" : `指標 ${ids.join(" / ")} はレポートにありません`,
      config,
      summary: summarize(labels, numbers, "件"),
    });
  }

  function meetingsChart(indicators) {
    const present = MEETING_INDICATORS.filter(([id]) => indicators.has(id));
    const values = Object.fromEntries(present.map(([id]) => [id, indicators.get(id).value]));
    const labels = present.map(([, label]) => label);
    const numbers = present.map(([id]) => values[id]);
    drawChart("chart-meetings", {
      values,
      source: present.map(([id]) => id).join(","),
      hasData: nonZero(numbers),
      emptyText: present.length ? "データがありません（0件）" : "会議の指標はレポートにありません",
      config: barConfig(labels, numbers, "回数・件数"),
      summary: summarize(labels, numbers),
    });
  }

  function timeToAcceptChart(indicators) {
    const indicator = indicators.get("OPS-TIME-TO-ACCEPT");
    const dims = indicator?.by_dimension ?? {};
    const keys = ["p50", "p90"].filter((k) => has(dims, k));
    const values = Object.fromEntries(keys.map((k) => [k, dims[k]]));
    const labels = keys.map((key) => dimensionLabel(indicator, key));
    const numbers = keys.map((k) => values[k]);
    drawChart("chart-time-to-accept", {
      values,
      source: keys.length ? "OPS-TIME-TO-ACCEPT" : "",
      hasData: keys.length > 0 && numbers.some(isNumber),
      emptyText: indicator ? "受入までの時間のデータがありません" : "指標 OPS-TIME-TO-ACCEPT はレポートにありません",
      config: barConfig(labels, numbers, "時間", { unit: "時間", counts: false }),
      summary: summarize(labels, numbers, "時間"),
    });
  }

  function targetsChart(report) {
    const targeted = report.indicators.filter((i) => isNumber(i.target));
    const values = Object.fromEntries(targeted.map((i) => [i.id, { value: i.value, target: i.target }]));
    const labels = targeted.map((i) => i.id);
    const names = targeted.map((i) => i.name_ja ?? i.id);
    drawChart("chart-targets", {
      values,
      source: labels.join(","),
      hasData: targeted.length > 0,
      emptyText: "目標が設定された指標はありません",
      config: {
        type: "bar",
        data: {
          labels,
          datasets: [
            { label: "実績", data: targeted.map((i) => i.value), backgroundColor: COLORS[0] },
            { label: "目標", data: targeted.map((i) => i.target), backgroundColor: COLORS[1] },
          ],
        },
        options: baseOptions({
          scales: { y: { beginAtZero: true } },
          plugins: { tooltip: { callbacks: { title: (items) => `${labels[items[0].dataIndex]} ${names[items[0].dataIndex]}` } } },
        }),
      },
      summary: targeted.map((i) => `${i.id}: 実績 ${formatNumber(i.value)} / 目標 ${formatNumber(i.target)}`).join("、"),
    });
  }

  function renderCharts(report) {
    const indicators = new Map(report.indicators.map((i) => [i.id, i]));
    dimensionChart("chart-routes", indicators, ["R10", "M8"], { kind: "bar", datasetLabel: "相談受付件数" });
    dimensionChart("chart-tiers", indicators, ["OPS-DECISIONS"], { kind: "doughnut", datasetLabel: "振り分け決定件数" });
    meetingsChart(indicators);
    timeToAcceptChart(indicators);
    dimensionChart("chart-endings", indicators, ["CASES-ENDED"], { kind: "bar", datasetLabel: "終結したケース数" });
    targetsChart(report);
  }

  // Fiscal-year months in order (April to March).
  const FISCAL_MONTHS = [4, 5, 6, 7, 8, 9, 10, 11, 12, 1, 2, 3];

  // Intake routes over time: one report per month of the fiscal year, new cases (M8) by route.
  function monthlyRoutesChart(monthly) {
    const values = {};
    const routes = new Set();
    const routeLabels = {};
    monthly.forEach((report, i) => {
      const m8 = report.indicators.find((indicator) => indicator.id === "M8");
      values[FISCAL_MONTHS[i]] = m8?.by_dimension ?? {};
      Object.assign(routeLabels, m8?.labels ?? {});
      Object.keys(values[FISCAL_MONTHS[i]]).forEach((route) => routes.add(route));
    });
    const ordered = [...routes].sort();
    const labels = FISCAL_MONTHS.map((month) => `${month}月`);
    drawChart("chart-routes-monthly", {
      values,
      source: "M8 (month=4…3)",
      hasData: ordered.length > 0,
      emptyText: "この年度の新規ケースはまだありません",
      summary: labels.map((label, i) => `${label}: ${formatNumber(Object.values(values[FISCAL_MONTHS[i]]).reduce((a, b) => a + b, 0))}`).join("、"),
      config: {
        type: "bar",
        data: {
          labels,
          datasets: ordered.map((route, j) => ({
            label: routeLabels[route] ?? route,
            data: FISCAL_MONTHS.map((month) => values[month][route] ?? 0),
            backgroundColor: COLORS[j % COLORS.length],
          })),
        },
        options: baseOptions({
          scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
        }),
      },
    });
  }

  function showError(message) {
    const body = document.body;
    delete body.dataset.ready;
    body.dataset.error = message;
    document.getElementById("status").hidden = true;
    const error = document.getElementById("error");
    error.textContent = message;
    error.hidden = false;
  }

  async function load() {
    const body = document.body;
    delete body.dataset.ready;
    delete body.dataset.error;
    document.getElementById("status").hidden = false;
    document.getElementById("error").hidden = true;
    try {
      if (typeof window.Chart !== "function") {
        throw new DashboardError("グラフ描画ライブラリ（Chart.js）を読み込めませんでした。");
      }
      window.Chart.defaults.font.family = FONT;
      window.Chart.defaults.locale = "ja-JP";
      const params = readParams();
      validate(params);
      const report = await fetchReport(params);
      renderHeader(report, params);
      renderTable(report);
      document.getElementById("content").hidden = false; // charts need laid-out boxes to size themselves
      renderCharts(report);
      const monthlyFigure = document.getElementById("chart-routes-monthly");
      monthlyFigure.hidden = Boolean(params.month);
      if (!params.month) {
        const fiscalYear = params.fiscalYear || report.fiscal_year;
        const monthly = await Promise.all(
          FISCAL_MONTHS.map((month) => fetchReport({ ...params, fiscalYear, month })),
        );
        monthlyRoutesChart(monthly);
      }
      document.getElementById("status").hidden = true;
      await new Promise((resolve) => window.requestAnimationFrame(resolve));
      body.dataset.ready = "true";
    } catch (error) {
      const message =
        error instanceof DashboardError ? error.message : `表示中にエラーが発生しました: ${error?.message ?? error}`;
      showError(message);
    }
  }

  window.addEventListener("hashchange", load);
  load();
})();
