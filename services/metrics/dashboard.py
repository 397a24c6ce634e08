"""Operators' dashboard (成果把握項目ダッシュボード): one Japanese page that draws `GET /v1/indicators`.

Include `router` in the metrics app; it serves the page at `/dashboard` and its assets (the page's
script and styles, and Chart.js, bundled: the machines have no internet) at `/dashboard/static/…`.
The assets are served by a plain route that asks `StaticFiles` for the file, not by a mount, so that
`app.include_router(router)` serves them on every FastAPI version (older ones drop a router's mounts).

The page itself carries no data and needs no credential: its script reads the operator's access
token and the municipality from the URL fragment (`/dashboard#token=…&municipality=242080`), which
browsers never send to a server, and calls the API with `Authorization: Bearer`.
"""

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_assets = StaticFiles(directory=STATIC_DIR)

# Only this page's own files, no inline script or style; the API is on the same origin.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

# Asset and API addresses are relative, so the page also works behind a proxy under a path prefix.
PAGE = """<!doctype html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>成果把握項目ダッシュボード｜まるごと</title>
<link rel="stylesheet" href="dashboard/static/dashboard.css">
<script src="dashboard/static/chart.umd.js" defer></script>
<script src="dashboard/static/dashboard.js" defer></script>
</head>
<body>
<header class="page-header">
  <h1>成果把握項目ダッシュボード</h1>
  <dl class="scope">
    <div><dt>市町村</dt><dd id="municipality">—</dd></div>
    <div><dt>年度</dt><dd id="fiscal-year">—</dd></div>
    <div id="month-row" hidden><dt>月</dt><dd id="month">—</dd></div>
  </dl>
</header>
<main>
  <p id="status" class="status" role="status">読み込み中…</p>
  <p id="error" class="error" role="alert" hidden></p>
  <div id="content" hidden>
    <section class="charts" aria-label="グラフ">
      <figure class="chart" id="chart-routes">
        <figcaption>相談受付経路</figcaption>
        <div class="chart-box"><canvas aria-label="相談受付経路のグラフ" role="img"></canvas></div>
        <p class="empty" hidden>データがありません</p>
      </figure>
      <figure class="chart wide" id="chart-routes-monthly">
        <figcaption>相談受付経路の推移（月別・新規ケース）</figcaption>
        <div class="chart-box"><canvas aria-label="月別の相談受付経路のグラフ" role="img"></canvas></div>
        <p class="empty" hidden>データがありません</p>
      </figure>
      <figure class="chart" id="chart-tiers">
        <figcaption>振り分け決定の層別内訳</figcaption>
        <div class="chart-box"><canvas aria-label="層別内訳のグラフ" role="img"></canvas></div>
        <p class="empty" hidden>データがありません</p>
      </figure>
      <figure class="chart" id="chart-meetings">
        <figcaption>会議の開催と出席</figcaption>
        <div class="chart-box"><canvas aria-label="会議の開催と出席のグラフ" role="img"></canvas></div>
        <p class="empty" hidden>データがありません</p>
      </figure>
      <figure class="chart" id="chart-time-to-accept">
        <figcaption>受入までの時間（時間）</figcaption>
        <div class="chart-box"><canvas aria-label="受入までの時間のグラフ" role="img"></canvas></div>
        <p class="empty" hidden>データがありません</p>
      </figure>
      <figure class="chart" id="chart-endings">
        <figcaption>終結したケース（理由別）</figcaption>
        <div class="chart-box"><canvas aria-label="終結したケースの理由別のグラフ" role="img"></canvas></div>
        <p class="empty" hidden>データがありません</p>
      </figure>
      <figure class="chart wide" id="chart-targets">
        <figcaption>目標と実績</figcaption>
        <div class="chart-box"><canvas aria-label="目標と実績のグラフ" role="img"></canvas></div>
        <p class="empty" hidden>目標が設定された指標はありません</p>
      </figure>
    </section>
    <section class="indicators" aria-labelledby="indicators-title">
      <h2 id="indicators-title">指標一覧</h2>
      <div class="table-wrap">
        <table id="indicator-table">
          <thead><tr></tr></thead>
          <tbody></tbody>
        </table>
      </div>
    </section>
  </div>
</main>
<footer class="page-footer">
  アクセストークンは URL の「#」以降から読み取り、サーバーへは Authorization ヘッダーでのみ送ります。
</footer>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/dashboard", name="metrics_dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard() -> HTMLResponse:
    """The dashboard page: static markup; its script fetches the indicators with the operator's token."""
    return HTMLResponse(PAGE, headers=_PAGE_HEADERS)


@router.api_route(
    "/dashboard/static/{name}", methods=["GET", "HEAD"], name="metrics_dashboard_static", include_in_schema=False
)
async def dashboard_static(name: str, request: Request) -> Response:
    """One file of `static/` (flat: no sub-folders), with `StaticFiles`' ETag and conditional requests."""
    if not _ASSET_NAME.fullmatch(name):
        raise HTTPException(status_code=404)
    response = await _assets.get_response(name, request.scope)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
