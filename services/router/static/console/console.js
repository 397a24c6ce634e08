// The coordinators' console: plain ES2020, an Alpine.js (CSP build) component; no build step.
//
// The page is a client of the services' own APIs: the router's on this origin, intake's and conference's
// through the same-origin pass-through at console/api/{service}/… . The access token lives only in the
// variable below: never in storage, a cookie or a URL.
"use strict";

(function () {
  let accessToken = null;
  // Feed connection state, outside Alpine's reactive data (controllers and timers are not view state).
  let feedRun = 0;
  let feedController = null;
  let lastEventId = null;
  // The element that opened the dialog, to give the focus back when it closes.
  let dialogOpener = null;
  let dialogAction = null;

  const TOKEN_PATH = "console/api/intake/v1/token";
  const GROUPS = [
    { id: "new", label: "新着", statuses: ["requested"] },
    { id: "waiting", label: "受諾待ち", statuses: ["received"] },
    { id: "accepted", label: "受諾済み・対応中", statuses: ["accepted", "in_progress"] },
    { id: "on-hold", label: "保留中", statuses: ["on_hold"] },
  ];
  // What each state may move to from the page, and how it is asked (router: services/router/referrals.py).
  const ACTIONS = {
    requested: ["received", "accepted", "rejected"],
    received: ["accepted", "rejected"],
    accepted: ["in_progress", "completed"],
    in_progress: ["on_hold", "completed"],
    on_hold: ["in_progress", "completed"],
  };
  const ACTION_TEXT = {
    received: { label: "受付", title: "依頼を受け付けますか", confirm: "受け付ける", style: "secondary" },
    accepted: { label: "受諾", title: "依頼を受諾しますか", confirm: "受諾する", style: "" },
    rejected: { label: "辞退", title: "依頼を辞退しますか", confirm: "辞退する", style: "danger", reasons: "reject_reasons" },
    in_progress: { label: "対応開始", title: "対応を開始（再開）しますか", confirm: "開始する", style: "secondary" },
    on_hold: { label: "保留", title: "依頼を保留（見守り）にしますか", confirm: "保留にする", style: "secondary" },
    completed: { label: "完了", title: "依頼を完了しますか", confirm: "完了にする", style: "secondary", reasons: "close_reasons" },
  };
  const RELATIONS = {
    self: "本人", spouse: "配偶者", parent: "親", child: "子", grandparent: "祖父母",
    grandchild: "孫", sibling: "きょうだい", other: "その他",
  };
  const EXPIRED = "サインインの有効期限が切れました。もう一度サインインしてください。";
  const NO_QUEUE = "この機関の資格情報には、受付一覧を見る権限（coordinator）がありません。運用担当者にご相談ください。";

  const dateTime = new Intl.DateTimeFormat("ja-JP", {
    timeZone: "Asia/Tokyo", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  });
  const dateOnly = new Intl.DateTimeFormat("ja-JP", { timeZone: "Asia/Tokyo", year: "numeric", month: "2-digit", day: "2-digit" });

  function formatDateTime(value) {
    if (!value) return "—";
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? String(value) : dateTime.format(date);
  }

  function formatDate(value) {
    if (!value) return "—";
    const date = new Date(value.length === 10 ? value + "T00:00:00+09:00" : value);
    return Number.isNaN(date.getTime()) ? String(value) : dateOnly.format(date);
  }

  // Ids are time-ordered (UUIDv7): cases opened together share their first digits, never their last ones.
  function shortId(id) {
    return id ? String(id).slice(-8) : "";
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // The claims of our own token (to know the agency and its municipalities); the services verify it.
  function claimsOf(token) {
    try {
      const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const json = decodeURIComponent(
        Array.from(atob(payload + "=".repeat((4 - (payload.length % 4)) % 4)))
          .map((c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0"))
          .join("")
      );
      return JSON.parse(json);
    } catch (error) {
      return {};
    }
  }

  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && problem.detail) || "HTTP " + status);
      this.status = status;
      this.problem = problem || {};
    }
  }

  class Expired extends Error {}

  async function api(path, options) {
    const init = Object.assign({ method: "GET", cache: "no-store", credentials: "omit" }, options || {});
    init.headers = Object.assign({ Accept: "application/json" }, init.headers || {});
    if (accessToken) init.headers.Authorization = "Bearer " + accessToken;
    const response = await fetch(path, init);
    if (response.status === 401 && accessToken) throw new Expired(EXPIRED);
    if (!response.ok) {
      let problem = null;
      try {
        problem = await response.json();
      } catch (error) {
        problem = null;
      }
      throw new ApiError(response.status, problem);
    }
    return response;
  }

  async function apiJson(path, options) {
    const response = await api(path, options);
    return response.status === 204 ? null : response.json();
  }

  function postJson(path, body) {
    return apiJson(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  }

  // Server-Sent Events over fetch (EventSource cannot send Authorization): calls `onEvent` per event.
  async function readEvents(body, onEvent) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let event = { id: null, type: "message", data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer[newline] === "\r" && buffer[newline + 1] === "\n" ? 2 : 1));
        if (line === "") {
          if (event.data.length) onEvent({ id: event.id, type: event.type, data: event.data.join("\n") });
          event = { id: null, type: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "id") event.id = value;
        else if (field === "event") event.type = value;
        else if (field === "data") event.data.push(value);
      }
    }
  }

  function consoleComponent() {
    return {
      vocabulary: {},
      view: "signin",
      routed: false,
      busy: false,
      signedIn: false,
      form: { clientId: "", clientSecret: "" },
      signinError: "",
      pageError: "",
      announcement: "",
      agencyId: "",
      scopes: [],
      municipalities: [],
      agencyNames: {},
      leadOf: [],
      connection: "closed",
      referrals: {},
      feedAlerts: [],
      caseId: null,
      caseState: "none",
      caseView: {},
      personal: [],
      personalState: "hidden",
      personalError: "",
      matches: [],
      evaluations: [],
      calendar: [],
      planForm: { caseId: "", goals: "", interval: "", evaluation: "", reason: "" },
      planMessage: "",
      dialog: { title: "", message: "", confirmLabel: "", needsReason: false, reasons: [], reason: "", error: "" },

      async init() {
        try {
          const response = await fetch("console/vocabulary.json", { cache: "no-store" });
          this.vocabulary = await response.json();
        } catch (error) {
          this.vocabulary = {};
        }
        window.addEventListener("hashchange", () => this.route());
        this.route();
      },

      // --- labels --------------------------------------------------------------------------------
      label(group, key) {
        const table = this.vocabulary[group] || {};
        return table[key] || key;
      },
      agencyName(id) {
        return this.agencyNames[id] || id || "—";
      },
      problemMessage(error) {
        if (error instanceof Expired) return EXPIRED;
        const problem = (error && error.problem) || {};
        const slug = String(problem.type || "").split("/").pop();
        const known = (this.vocabulary.problems || {})[slug];
        if (known) return known;
        if (problem.detail) return "処理できませんでした: " + problem.detail;
        return "処理できませんでした（" + ((error && error.status) || "通信エラー") + "）。";
      },
      get agencyLabel() {
        return this.agencyName(this.agencyId) + "（" + this.agencyId + "）";
      },
      get isLead() {
        return this.leadOf.length > 0;
      },
      get connectionLabel() {
        return { open: "接続中", connecting: "接続しています…", reconnecting: "再接続中…", closed: "未接続" }[this.connection];
      },
      isView(name) {
        return this.view === name;
      },
      currentIf(name) {
        return this.view === name ? "page" : null;
      },
      skipToMain() {
        document.getElementById("main").focus();
      },

      // --- sign-in -------------------------------------------------------------------------------
      async signIn() {
        this.signinError = "";
        if (!this.form.clientId || !this.form.clientSecret) {
          this.signinError = "機関IDとシークレットを入力してください。";
          return;
        }
        this.busy = true;
        try {
          const body = new URLSearchParams({
            grant_type: "client_credentials", client_id: this.form.clientId, client_secret: this.form.clientSecret,
          });
          const response = await fetch(TOKEN_PATH, {
            method: "POST", cache: "no-store", credentials: "omit", body,
            headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
          });
          if (!response.ok) {
            this.signinError = response.status === 401 ? "機関IDまたはシークレットが正しくありません。" : "サインインできませんでした（" + response.status + "）。";
            return;
          }
          const granted = await response.json();
          accessToken = granted.access_token;
          const claims = claimsOf(accessToken);
          this.agencyId = claims.sub || this.form.clientId;
          this.scopes = String(granted.scope || claims.scope || "").split(" ").filter(Boolean);
          this.municipalities = claims.municipalities || [];
        } catch (error) {
          this.signinError = "サインインできませんでした（通信エラー）。";
          return;
        } finally {
          this.busy = false;
          this.form.clientSecret = "";
        }
        this.signedIn = true;
        this.pageError = "";
        await this.loadDirectories();
        this.startQueue();
        this.route();
      },

      signOut(message) {
        accessToken = null;
        feedRun += 1;
        if (feedController) feedController.abort();
        feedController = null;
        lastEventId = null;
        this.signedIn = false;
        this.agencyId = "";
        this.scopes = [];
        this.municipalities = [];
        this.agencyNames = {};
        this.leadOf = [];
        this.referrals = {};
        this.feedAlerts = [];
        this.matches = [];
        this.evaluations = [];
        this.calendar = [];
        this.clearCase();
        this.connection = "closed";
        this.announcement = "";
        this.signinError = typeof message === "string" ? message : "";
        this.show("signin");
      },

      expired() {
        this.signOut(EXPIRED);
      },

      // Runs `work`; an expired token returns to the sign-in form, other errors go to `onError`.
      async guarded(work, onError) {
        try {
          return await work();
        } catch (error) {
          if (error instanceof Expired) {
            this.expired();
            return undefined;
          }
          if (onError) return onError(error);
          this.pageError = this.problemMessage(error);
          return undefined;
        }
      },

      async loadDirectories() {
        const names = {};
        const leadOf = [];
        for (const code of this.municipalities) {
          await this.guarded(
            async () => {
              const directory = await apiJson("v1/directories/" + encodeURIComponent(code));
              for (const agency of (directory.body && directory.body.agencies) || []) names[agency.id] = agency.name;
              const municipality = (directory.body && directory.body.municipality) || {};
              if (municipality.lead === this.agencyId) leadOf.push(code);
            },
            () => undefined
          );
        }
        this.agencyNames = names;
        this.leadOf = this.scopes.includes("coordinator") ? leadOf : [];
      },

      // --- routing -------------------------------------------------------------------------------
      route() {
        if (!accessToken) {
          this.show("signin");
          return;
        }
        const hash = window.location.hash || "#/";
        const match = /^#\/cases\/([^/?#]+)$/.exec(hash);
        if (match) {
          this.show("case");
          this.openCase(decodeURIComponent(match[1]));
        } else if (hash === "#/lead" && this.isLead) {
          this.show("lead");
          this.loadLead();
        } else {
          this.clearCase();
          this.show("queue");
        }
      },

      show(view) {
        const first = !this.routed;
        this.routed = true;
        this.view = view;
        // On the first load the focus stays at the top of the page, where the skip link is.
        if (first) return;
        this.$nextTick(() => {
          const heading = document.getElementById(view + "-title");
          if (heading) heading.focus();
        });
      },

      // --- the queue, live -----------------------------------------------------------------------
      async startQueue() {
        await this.guarded(
          async () => {
            const rows = await apiJson("v1/referrals");
            const referrals = {};
            for (const row of rows) referrals[row.id] = row;
            this.referrals = referrals;
          },
          (error) => {
            this.pageError = error.status === 403 ? NO_QUEUE : this.problemMessage(error);
          }
        );
        this.followFeed();
      },

      async followFeed() {
        const run = ++feedRun;
        let backoff = 1000;
        this.connection = "connecting";
        while (run === feedRun && accessToken) {
          const controller = new AbortController();
          feedController = controller;
          try {
            const headers = { Authorization: "Bearer " + accessToken, Accept: "text/event-stream" };
            if (lastEventId) headers["Last-Event-ID"] = lastEventId;
            const response = await fetch("v1/feed", { headers, cache: "no-store", credentials: "omit", signal: controller.signal });
            if (response.status === 401) {
              if (run === feedRun) this.expired();
              return;
            }
            if (response.status === 403) {
              // A credential without the coordinator scope has no queue: retrying would not change that.
              this.connection = "closed";
              this.pageError = NO_QUEUE;
              return;
            }
            if (!response.ok || !response.body) throw new Error("feed " + response.status);
            this.connection = "open";
            backoff = 1000;
            await readEvents(response.body, (event) => {
              if (run === feedRun) this.onFeedEvent(event);
            });
          } catch (error) {
            if (run !== feedRun) return;
          }
          if (run !== feedRun) return;
          this.connection = "reconnecting";
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 30000);
        }
      },

      // Test and support hook: drop the connection as a network failure would; the feed resumes.
      dropConnection() {
        if (feedController) feedController.abort();
      },

      onFeedEvent(event) {
        if (event.id) lastEventId = event.id;
        let entry;
        try {
          entry = JSON.parse(event.data);
        } catch (error) {
          return;
        }
        const body = entry.body || {};
        const known = this.referrals[entry.referral_id];
        const merged = Object.assign({}, known || {}, {
          id: entry.referral_id,
          case_id: entry.case_id,
          status: body.status || (known && known.status),
          tier: body.tier || (known && known.tier),
          rule_id: body.rule_id || (known && known.rule_id),
          tags: body.issues || (known && known.tags) || [],
          deadline: body.deadline || (known && known.deadline) || null,
          requested_at: (known && known.requested_at) || entry.at,
        });
        this.referrals = Object.assign({}, this.referrals, { [entry.referral_id]: merged });
        const alert = ["escalated", "monitoring_overdue", "use_restricted", "use_restriction_lifted"].includes(entry.kind);
        if (alert || (entry.kind === "referral_requested" && body.rule_id === "escalation")) {
          // The lead's referral of an escalation is where the escalation reaches it.
          const kind = entry.kind === "referral_requested" ? "escalated" : entry.kind;
          this.feedAlerts = this.feedAlerts.concat([{ key: String(entry.id), kind, case_id: entry.case_id, at: body.deadline || entry.at }]);
        }
        if (entry.kind === "referral_requested" && !known) {
          this.announcement = "新しい依頼が届きました（事例 " + shortId(entry.case_id) + "）。受付一覧の「新着」を確認してください。";
        }
      },

      get groups() {
        const all = Object.values(this.referrals);
        const now = Date.now();
        return GROUPS.map((group) => {
          const items = all
            .filter((r) => group.statuses.includes(r.status))
            .sort((a, b) => String(a.deadline || a.requested_at).localeCompare(String(b.deadline || b.requested_at)))
            .map((r) => this.queueItem(r, now));
          return {
            id: group.id,
            label: group.label,
            htmlId: "group-" + group.id,
            titleId: "group-" + group.id + "-title",
            countLabel: "（" + items.length + "件）",
            empty: items.length === 0,
            items,
          };
        });
      },

      queueItem(r, now) {
        const awaiting = r.status === "requested" || r.status === "received";
        const overdue = awaiting && r.deadline && new Date(r.deadline).getTime() < now;
        const tags = (r.tags || []).map((t) => this.label("issue_tags", t));
        const title = "事例 " + shortId(r.case_id);
        return {
          id: r.id,
          status: r.status,
          href: "#/cases/" + encodeURIComponent(r.case_id),
          title,
          statusLabel: this.label("referral_statuses", r.status),
          tierLabel: r.tier ? this.label("tiers", String(r.tier)) : "",
          issuesLabel: tags.length ? tags.join("・") : "（世帯全体）",
          requestedLabel: formatDateTime(r.requested_at),
          showDeadline: awaiting && Boolean(r.deadline),
          deadlineLabel: formatDateTime(r.deadline) + (overdue ? "（期限超過）" : ""),
          deadlineClass: overdue ? "overdue" : "",
          actions: (ACTIONS[r.status] || []).map((to) => ({
            to,
            label: ACTION_TEXT[to].label,
            style: ACTION_TEXT[to].style,
            ariaLabel: ACTION_TEXT[to].label + "（" + title + "）",
          })),
        };
      },

      // --- the confirmation dialog ---------------------------------------------------------------
      openDialog(spec, action) {
        dialogOpener = document.activeElement;
        dialogAction = action;
        const reasons = spec.reasons ? Object.entries(this.vocabulary[spec.reasons] || {}).map(([code, label]) => ({ code, label })) : [];
        this.dialog = {
          title: spec.title, message: spec.message || "", confirmLabel: spec.confirm,
          needsReason: reasons.length > 0, reasons, reason: "", error: "",
        };
        this.$refs.confirm.showModal();
        this.$nextTick(() => {
          const first = this.dialog.needsReason ? document.getElementById("dialog-reason") : document.getElementById("dialog-cancel");
          if (first) first.focus();
        });
      },

      cancelDialog() {
        this.$refs.confirm.close();
      },

      dialogClosed() {
        dialogAction = null;
        const opener = dialogOpener;
        dialogOpener = null;
        if (opener && document.body.contains(opener)) opener.focus();
        else {
          const heading = document.getElementById(this.view + "-title");
          if (heading) heading.focus();
        }
      },

      async confirmDialog() {
        if (!dialogAction) return;
        if (this.dialog.needsReason && !this.dialog.reason) {
          this.dialog.error = "理由を選択してください。";
          return;
        }
        this.busy = true;
        this.dialog.error = "";
        try {
          await dialogAction(this.dialog.reason || null);
          this.$refs.confirm.close();
        } catch (error) {
          if (error instanceof Expired) {
            this.$refs.confirm.close();
            this.expired();
          } else {
            this.dialog.error = this.problemMessage(error);
          }
        } finally {
          this.busy = false;
        }
      },

      askTransition(referralId, to) {
        const referral = this.referrals[referralId];
        const text = ACTION_TEXT[to];
        const spec = Object.assign({}, text, {
          message: "事例 " + shortId(referral.case_id) + "（" + this.label("referral_statuses", referral.status) + "）を「" + this.label("referral_statuses", to) + "」にします。",
        });
        this.openDialog(spec, async (reason) => {
          const body = { to };
          if (reason) body.reason_code = reason;
          const moved = await postJson("v1/referrals/" + encodeURIComponent(referralId) + "/transitions", body);
          const known = this.referrals[referralId] || {};
          this.referrals = Object.assign({}, this.referrals, { [referralId]: Object.assign({}, known, moved) });
          this.announcement = "事例 " + shortId(moved.case_id) + " を「" + this.label("referral_statuses", moved.status) + "」にしました。";
        });
      },

      // --- the case page -------------------------------------------------------------------------
      clearCase() {
        this.caseId = null;
        this.caseState = "none";
        this.caseView = {};
        this.personal = [];
        this.personalState = "hidden";
        this.personalError = "";
        this.personalBasis = "";
      },
      get caseLoading() {
        return this.caseState === "loading";
      },
      get caseHidden() {
        return this.caseState === "hidden";
      },
      get caseShown() {
        return this.caseState === "shown";
      },
      get personalHidden() {
        return this.personalState !== "shown";
      },
      get personalShown() {
        return this.personalState === "shown";
      },
      get personalCaption() {
        return "個人情報（根拠: " + ({ consent: "本人同意", engagement: "提出機関", support_meeting: "支援会議", emergency: "緊急" }[this.personalBasis] || "—") + "）";
      },

      async openCase(caseId) {
        if (this.caseId === caseId && this.caseState !== "none") return;
        this.clearCase();
        this.caseId = caseId;
        this.caseState = "loading";
        const id = encodeURIComponent(caseId);
        // Every read goes to the API as this agency; any 404 means the same neutral message.
        const read = (path) => apiJson(path).then((value) => ({ value }), (error) => ({ error }));
        const [decision, timeline, plans, meetings] = await Promise.all([
          read("v1/cases/" + id + "/decision"),
          read("console/api/intake/v1/cases/" + id),
          read("console/api/conference/v1/cases/" + id + "/plans"),
          read("console/api/conference/v1/meetings?case_id=" + id),
        ]);
        if (this.caseId !== caseId) return;
        const results = [decision, timeline, plans, meetings];
        if (results.some((r) => r.error instanceof Expired)) {
          this.expired();
          return;
        }
        const hidden = results.some((r) => r.error && r.error.status === 404) || Boolean(decision.error);
        if (hidden) {
          this.caseView = {};
          this.caseState = "hidden";
          return;
        }
        this.caseView = this.buildCaseView(caseId, decision.value, timeline, plans, meetings);
        this.caseState = "shown";
      },

      buildCaseView(caseId, decision, timeline, plans, meetings) {
        const full = decision.view === "full";
        const engaged = (decision.engaged || []).map((e, index) => ({
          key: index + ":" + e.agency_id,
          agency: this.agencyName(e.agency_id),
          reason: this.label("rules", e.rule_id || ""),
          basis: e.legal_basis ? "根拠: " + e.legal_basis : "",
          hasTags: (e.tags || []).length > 0,
          tags: (e.tags || []).map((t) => this.label("issue_tags", t)).join("・"),
        }));
        const patterns = (decision.patterns || []).map((p) => this.label("patterns", p.id || p.pattern || p.rule_id || ""));
        const gaps = (decision.resource_gaps || []).map((g) => g.partner_type || "");
        const excluded = (decision.excluded || []).map((e, index) => ({
          key: index + ":" + e.agency_id, agency: this.agencyName(e.agency_id), reason: this.label("rules", e.rule_id || ""),
        }));
        const view = {
          id: caseId,
          decisionScope: full ? "協働の中核として、決定の全体を表示しています。" : "決定のうち、貴機関の関わりとその理由だけを表示しています。",
          tierLabel: this.label("tiers", String(decision.tier)),
          leadLabel: decision.lead ? this.agencyName(decision.lead) : "—",
          hasPatterns: patterns.length > 0,
          patternsLabel: patterns.join("、"),
          engaged,
          excluded,
          hasExcluded: excluded.length > 0,
          hasGaps: gaps.length > 0,
          gapsLabel: gaps.join("、"),
          timelineNote: "",
          referrals: [],
          hasReferrals: false,
          plans: [],
          noPlan: true,
          meetings: [],
          noMeetings: true,
        };
        if (timeline.value) {
          view.referrals = (timeline.value.referrals || []).map((r) => ({
            key: r.referral_id, agency: this.agencyName(r.agency_id), status: this.label("referral_statuses", r.status),
          }));
          view.hasReferrals = view.referrals.length > 0;
        } else {
          view.timelineNote = this.problemMessage(timeline.error);
        }
        if (plans.value) {
          const today = new Date().toISOString().slice(0, 10);
          view.plans = plans.value.slice().reverse().map((plan) => ({
            key: plan.plan_id + ":" + plan.version,
            title: "第" + plan.version + "版（" + this.label("plan_statuses", plan.status) + "）",
            main: this.agencyName(plan.main_agency),
            interval: plan.monitoring_interval_days + "営業日ごと",
            evaluation: formatDate(plan.next_evaluation) + (plan.next_evaluation < today ? "（期限超過）" : ""),
            evaluationClass: plan.next_evaluation < today ? "overdue" : "",
            monitorings: (plan.monitorings || []).length + "件",
            goals: (plan.goals || []).map((text, index) => ({ key: String(index), text })),
          }));
          view.noPlan = view.plans.length === 0;
        }
        if (meetings.value) {
          view.meetings = meetings.value.map((m) => this.meetingRow(m));
          view.noMeetings = view.meetings.length === 0;
        }
        return view;
      },

      meetingRow(m) {
        return {
          key: m.id,
          kind: this.label("meeting_kinds", m.kind),
          when: m.starts_at ? formatDateTime(m.starts_at) : "日程調整中" + (m.deadline ? "（期限 " + formatDateTime(m.deadline) + "）" : ""),
          status: m.needs_attention ? "要調整" : this.label("meeting_statuses", m.status),
          hasCase: Boolean(m.case_id),
          href: m.case_id ? "#/cases/" + encodeURIComponent(m.case_id) : "#/",
          caseLabel: m.case_id ? "事例 " + shortId(m.case_id) : "",
        };
      },

      async showPersonalDetails() {
        this.personalError = "";
        const caseId = this.caseId;
        await this.guarded(
          async () => {
            const release = await apiJson("console/api/intake/v1/cases/" + encodeURIComponent(caseId) + "/personal-details");
            if (this.caseId !== caseId) return;
            this.personalBasis = release.basis;
            this.personal = (release.members || []).map((m) => ({
              key: String(m.position),
              relation: RELATIONS[m.relation] || m.relation,
              name: m.name || "—",
              kana: m.kana || "—",
              birth: m.birth_date || "—",
              address: m.address || "—",
              phone: m.phone || "—",
            }));
            this.personalState = "shown";
          },
          (error) => {
            if (error.status === 404) {
              this.caseView = {};
              this.caseState = "hidden";
            } else {
              this.personalError = this.problemMessage(error);
            }
          }
        );
      },
      personalBasis: "",

      // --- the lead's work -----------------------------------------------------------------------
      async loadLead() {
        this.pageError = "";
        await this.guarded(async () => {
          const [matches, meetings] = await Promise.all([
            apiJson("console/api/intake/v1/household-matches"),
            apiJson("console/api/conference/v1/meetings"),
          ]);
          this.matches = matches.map((m) => this.matchRow(m));
          const now = Date.now() - 24 * 3600 * 1000;
          this.calendar = meetings
            .filter((m) => m.status !== "cancelled" && (!m.starts_at || new Date(m.starts_at).getTime() >= now))
            .sort((a, b) => String(a.starts_at || a.deadline).localeCompare(String(b.starts_at || b.deadline)))
            .map((m) => this.meetingRow(m));
        });
      },

      matchRow(m) {
        return {
          id: m.id,
          status: m.status,
          open: m.status === "open",
          statusLabel: this.label("match_statuses", m.status),
          caseHref: "#/cases/" + encodeURIComponent(m.case_id),
          caseLabel: "事例 " + shortId(m.case_id),
          otherHref: "#/cases/" + encodeURIComponent(m.matched_case_id),
          otherLabel: "事例 " + shortId(m.matched_case_id),
          createdLabel: formatDateTime(m.created_at),
          linkLabel: "同一世帯として連結（事例 " + shortId(m.case_id) + " と " + shortId(m.matched_case_id) + "）",
          dismissLabel: "別世帯として閉じる（事例 " + shortId(m.case_id) + " と " + shortId(m.matched_case_id) + "）",
        };
      },

      get noMatches() {
        return this.matches.length === 0;
      },
      get noCalendar() {
        return this.calendar.length === 0;
      },
      get hasEvaluations() {
        return this.evaluations.length > 0;
      },
      get alerts() {
        return this.feedAlerts.map((a) => ({
          key: a.key,
          kind: this.label("feed_kinds", a.kind),
          href: "#/cases/" + encodeURIComponent(a.case_id),
          caseLabel: "事例 " + shortId(a.case_id),
          when: formatDateTime(a.at),
        }));
      },
      get noAlerts() {
        return this.feedAlerts.length === 0;
      },

      askMatch(matchId, decision) {
        const link = decision === "link";
        this.openDialog(
          {
            title: link ? "同一世帯として連結しますか" : "別世帯として閉じますか",
            message: link
              ? "2つの事例を同じ世帯として連結します。実件数では1世帯として数えられます。"
              : "2つの事例は別の世帯として、この項目を閉じます。",
            confirm: link ? "連結する" : "閉じる",
          },
          async () => {
            const decided = await postJson("console/api/intake/v1/household-matches/" + encodeURIComponent(matchId) + "/" + decision, {});
            this.matches = this.matches.map((m) => (m.id === matchId ? this.matchRow(decided) : m));
            this.announcement = link ? "同一世帯として連結しました。" : "別世帯として閉じました。";
          }
        );
      },

      async loadEvaluations() {
        const today = new Date().toISOString().slice(0, 10);
        const cases = Array.from(new Set(Object.values(this.referrals).filter((r) => ["accepted", "in_progress", "on_hold", "requested", "received"].includes(r.status)).map((r) => r.case_id)));
        const rows = [];
        for (const caseId of cases) {
          await this.guarded(
            async () => {
              const plans = await apiJson("console/api/conference/v1/cases/" + encodeURIComponent(caseId) + "/plans");
              const current = plans.filter((p) => p.status !== "superseded").pop();
              if (!current) return;
              rows.push({
                key: caseId,
                href: "#/cases/" + encodeURIComponent(caseId),
                caseLabel: "事例 " + shortId(caseId),
                version: "第" + current.version + "版",
                evaluation: formatDate(current.next_evaluation) + (current.next_evaluation < today ? "（期限超過）" : ""),
                evaluationClass: current.next_evaluation < today ? "overdue" : "",
                sortKey: current.next_evaluation,
              });
            },
            () => undefined
          );
        }
        rows.sort((a, b) => a.sortKey.localeCompare(b.sortKey));
        this.evaluations = rows;
        this.announcement = rows.length ? "評価日を" + rows.length + "件読み込みました。" : "支援プランのある担当事例はありません。";
      },

      askPlan() {
        this.planMessage = "";
        const caseId = this.planForm.caseId.trim();
        if (!caseId) {
          this.pageError = "事例IDを入力してください。";
          return;
        }
        const body = {};
        const goals = this.planForm.goals.split("\n").map((g) => g.trim()).filter(Boolean);
        if (goals.length) body.goals = goals;
        if (this.planForm.interval) body.monitoring_interval_days = Number(this.planForm.interval);
        if (this.planForm.evaluation) body.next_evaluation = this.planForm.evaluation;
        if (this.planForm.reason.trim()) body.reason = this.planForm.reason.trim();
        this.openDialog(
          { title: "支援プラン案を作成しますか", message: "事例 " + shortId(caseId) + " の支援プランの新しい版を案として作成します。", confirm: "作成する" },
          async () => {
            const plan = await postJson("console/api/conference/v1/cases/" + encodeURIComponent(caseId) + "/plans", body);
            this.planMessage = "第" + plan.version + "版を案として作成しました（事例 " + shortId(caseId) + "）。";
            this.planForm = { caseId: "", goals: "", interval: "", evaluation: "", reason: "" };
          }
        );
      },

      // The calendar needs the bearer token, so it is fetched and handed over as a file.
      async downloadCalendar() {
        await this.guarded(async () => {
          const response = await api("console/api/conference/v1/calendars/" + encodeURIComponent(this.agencyId) + ".ics", {
            headers: { Accept: "text/calendar" },
          });
          const blob = await response.blob();
          const url = URL.createObjectURL(blob);
          const link = document.createElement("a");
          link.href = url;
          link.download = this.agencyId + ".ics";
          document.body.appendChild(link);
          link.click();
          link.remove();
          setTimeout(() => URL.revokeObjectURL(url), 10000);
          this.announcement = "会議予定（iCal）をダウンロードしました。";
        });
      },
    };
  }

  document.addEventListener("alpine:init", () => {
    window.Alpine.data("coordinatorConsole", consoleComponent);
  });
})();
