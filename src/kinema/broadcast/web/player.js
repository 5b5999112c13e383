// kinema tv player: plays the channel's HLS playlist with hls.js and shows what is on air.
//
// Query parameters: ?stream=URL.m3u8 (default: the first of index.m3u8, hls/index.m3u8 (the
// layout of kinema's nginx) and stream.m3u8 that loads), ?now=URL (default: now.json beside the
// playlist), ?poll=SECONDS. now.json is either {"title", "prompt", "started"} or the broadcaster's
// {"now": {"title", "prompt"?, "stream_time", "wall_time", ...}, "recent": [...], "next": [titles]}.
// A live stream plays behind the encoder, so with "recent" the page shows the entry on air at
// the viewer's own position: the last whose stream_time is not past it (the position in the
// stream is the playing fragment's media sequence number times its length, plus how far into
// it playback is: the broadcaster's segments are all one length), else, without stream_time,
// the last that went on air (segment length + hls.js's latency) ago by the server's clock
// (the Date header of now.json).
(function () {
  "use strict";
  var params = new URLSearchParams(window.location.search);
  var streams = params.get("stream") ? [params.get("stream")] : ["index.m3u8", "hls/index.m3u8", "stream.m3u8"];
  var beside = function (url) { return new URL("now.json", new URL(url, window.location.href)).href; };
  var nowUrl = params.get("now") || beside(streams[0]);
  var poll = Math.max(0.5, parseFloat(params.get("poll") || "2")) * 1000;
  var video = document.getElementById("video");
  var el = function (id) { return document.getElementById(id); };
  var hls = null, live = false, target = 0, skew = 0, last = null, frag = null;

  function status(text) { el("status").textContent = text; document.body.dataset.status = text; }

  function clock(seconds) {
    var s = Math.floor(seconds), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
    var mm = (h ? String(m).padStart(2, "0") : String(m)) + ":" + String(s % 60).padStart(2, "0");
    return h ? h + ":" + mm : mm;
  }

  video.addEventListener("timeupdate", function () {
    el("time").textContent = video.currentTime.toFixed(3);
    el("clock").textContent = clock(video.currentTime);
  });
  video.addEventListener("playing", function () { status("playing"); });
  video.addEventListener("waiting", function () { status("buffering"); });

  function play() {
    var p = video.play();
    if (p && p.catch) { p.catch(function () { status("press play"); }); }
  }

  function start(k) {
    var url = streams[k];
    if (!params.get("now")) { nowUrl = beside(url); }
    if (window.Hls && window.Hls.isSupported()) {
      hls = new window.Hls({ liveSyncDurationCount: 3, manifestLoadingMaxRetry: 2 });
      hls.on(window.Hls.Events.MANIFEST_PARSED, function () { status("loading"); play(); });
      hls.on(window.Hls.Events.LEVEL_LOADED, function (_event, data) {
        live = !!data.details.live;
        target = data.details.targetduration || 0;
        if (last) { show(last); }
      });
      hls.on(window.Hls.Events.FRAG_CHANGED, function (_event, data) {
        frag = data.frag;
        if (last) { show(last); }
      });
      hls.on(window.Hls.Events.ERROR, function (_event, data) {
        if (!data.fatal) { return; }
        if (data.details === window.Hls.ErrorDetails.MANIFEST_LOAD_ERROR && k + 1 < streams.length) {
          hls.destroy();
          start(k + 1);
        } else if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
          hls.recoverMediaError();
        } else {
          status("off air, retrying");
          setTimeout(function () { hls.destroy(); start(k); }, 3000);
        }
      });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = url;
      play();
    } else {
      status("this browser cannot play HLS");
    }
  }

  // The entry of now.json the viewer is watching: on a live stream, the last one of "recent"
  // that went on air before (server time now) - (segment length + latency).
  function watching(data) {
    var now = data && data.now ? data.now : (data || {});
    var recent = (data && data.recent) || [];
    if (!live || !recent.length) { return now; }
    var key = "wall_time", seen;
    if (frag && typeof frag.sn === "number" && recent.every(function (e) { return e.stream_time !== undefined; })) {
      key = "stream_time";
      seen = frag.sn * frag.duration + Math.max(0, video.currentTime - frag.start) + 0.1;
    } else {
      seen = (Date.now() + skew) / 1000 - target - (hls && isFinite(hls.latency) ? hls.latency : 0);
    }
    var best = null;
    recent.forEach(function (entry) {
      if (entry[key] !== undefined && entry[key] <= seen && (!best || entry[key] >= best[key])) { best = entry; }
    });
    return best || recent[0];
  }

  function show(data) {
    last = data;
    var now = watching(data);
    var title = now.title || "";
    var prompt = now.prompt || (now.extra && now.extra.prompt) || "";
    el("title").textContent = title || "…";
    el("prompt").textContent = prompt && prompt !== title ? prompt : "";
    var started = now.started !== undefined ? now.started : now.wall_time;
    el("started").textContent = started ? "since " + new Date(started * 1000).toLocaleTimeString() + " ·" : "";
    var next = (data && data.next) || [];
    el("next-box").hidden = !next.length;
    el("next").replaceChildren.apply(el("next"), next.slice(0, 3).map(function (t) {
      var li = document.createElement("li"); li.textContent = t; return li;
    }));
    document.title = title ? title + " · kinema tv" : "kinema tv";
    el("live").className = "live";
  }

  function refresh() {
    fetch(nowUrl + (nowUrl.indexOf("?") < 0 ? "?" : "&") + "t=" + Date.now(), { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error(r.status); }
        var date = Date.parse(r.headers.get("Date") || "");
        if (!isNaN(date)) { skew = date + 500 - Date.now(); }  // the header drops the milliseconds
        return r.json();
      })
      .then(show)
      .catch(function () { el("live").className = "live off"; })
      .then(function () { setTimeout(refresh, poll); });
  }

  start(0);
  refresh();
})();
