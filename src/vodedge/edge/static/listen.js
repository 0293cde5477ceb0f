"use strict";
// The listening page: one <video>, fed the file (MP4 natively, FLV through mpegts.js and
// Media Source Extensions) or its audio-only rendition, at the same position.
(function () {
  const root = document.getElementById("listen");
  const data = root.dataset;
  const video = document.getElementById("player");
  const toggle = document.getElementById("listen-only");
  const statusLine = document.getElementById("status");
  const languageBox = document.getElementById("language-box");
  const language = document.getElementById("language");
  const mediaPath = new URL(data.src, location.href).pathname;
  const totals = { video: { bytes: 0, responses: 0 }, audio: { bytes: 0, responses: 0 } };
  const state = { audio: false, track: "", player: null, info: null,
                  switchedAt: 0, resumedAt: null, counting: "" };
  window.vodedgeListen = { totals: totals, state: state };

  function say(text, error) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", Boolean(error));
  }

  function size(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " kB";
    return (bytes / 1024 / 1024).toFixed(2) + " MB";
  }

  // The chosen track's argument goes after the query as written (a signature may cover it).
  function withTrack(url) {
    if (!state.track) return url;
    return url + (url.includes("?") ? "&" : "?") + data.trackArg + "=" +
      encodeURIComponent(state.track);
  }

  function currentUrl() {
    return withTrack(state.audio ? data.audioSrc : data.src);
  }

  function dropPlayer() {
    if (state.player === null) return;
    state.player.pause();
    state.player.unload();
    state.player.detachMediaElement();
    state.player.destroy();
    state.player = null;
  }

  // Where the media element says "error", ask the edge why (its status and code).
  function explain(url) {
    fetch(url, { method: "HEAD" }).then(function (answer) {
      const code = answer.headers.get("X-Vodedge-Error");
      say("The edge answered " + answer.status + (code ? " (" + code + ")" : "") +
          " for " + url, true);
    }).catch(function () { say("The file could not be played.", true); });
  }

  function load(position, playing) {
    const url = currentUrl();
    dropPlayer();
    root.classList.toggle("audio", state.audio);
    // Where the new source was asked to start, and where it did (tests read both).
    state.switchedAt = position;
    state.resumedAt = null;
    video.addEventListener("loadedmetadata", function resume() {
      function resumed() {
        state.resumedAt = video.currentTime;
        if (playing) video.play().catch(function () {});
      }
      if (position > 0) {
        video.addEventListener("seeked", resumed, { once: true });
        video.currentTime = position;
      } else {
        resumed();
      }
    }, { once: true });
    if (data.kind === "flv") {
      if (!window.mpegts || !window.mpegts.isSupported()) {
        say("This browser has no Media Source Extensions: FLV cannot play here.", true);
        return;
      }
      window.mpegts.LoggingControl.enableAll = false;
      state.player = window.mpegts.createPlayer(
        { type: "flv", url: new URL(url, location.href).href, isLive: false,
          hasAudio: true, hasVideo: !state.audio },
        { enableWorker: false, lazyLoad: false, seekType: "range" });
      state.player.on(window.mpegts.Events.ERROR, function () { explain(url); });
      state.player.attachMediaElement(video);
      state.player.load();
    } else {
      video.src = url;
      video.load();
    }
  }

  video.addEventListener("error", function () {
    if (data.kind !== "flv") explain(currentUrl());
  });

  toggle.disabled = !data.audioSrc;
  if (!data.audioSrc) toggle.parentElement.title = "Audio extraction is off for this domain";
  toggle.addEventListener("change", function () {
    const position = video.currentTime;
    const playing = !video.paused && !video.ended;
    state.audio = toggle.checked;
    load(position, playing);
    say(state.audio ? "Listening: the audio-only rendition, from " + position.toFixed(1) + " s"
                    : "Watching: video and audio, from " + position.toFixed(1) + " s");
  });

  function languageName(code) {
    if (!code || code === "und") return "Undetermined";
    try {
      const name = new Intl.DisplayNames(["en"], { type: "language" }).of(code);
      if (name && name !== code) return name + " (" + code + ")";
    } catch (error) { /* not a BCP 47 code: show it as it is */ }
    return code;
  }

  function offerLanguages(tracks) {
    const audio = tracks.filter(function (track) { return track.kind === "audio"; });
    if (audio.length < 2 || !data.audioSrc) return;
    const all = document.createElement("option");
    all.value = "";
    all.textContent = "All tracks (the player picks)";
    language.appendChild(all);
    audio.forEach(function (track) {
      const option = document.createElement("option");
      option.value = String(track.id);
      option.dataset.language = track.language;
      option.textContent = languageName(track.language) + " · " + track.codec + " · track " + track.id;
      language.appendChild(option);
    });
    languageBox.hidden = false;
    language.addEventListener("change", function () {
      state.track = language.value;
      load(video.currentTime, !video.paused && !video.ended);
      const chosen = language.options[language.selectedIndex];
      say(state.track ? "Playing " + chosen.textContent.split(" · ")[0] + " from " +
                        state.switchedAt.toFixed(1) + " s"
                      : "Playing the file's own tracks");
    });
  }

  fetch(data.info).then(function (answer) {
    if (!answer.ok) {
      const code = answer.headers.get("X-Vodedge-Error");
      say("The edge answered " + answer.status + (code ? " (" + code + ")" : ""), true);
      return null;
    }
    return answer.json();
  }).then(function (info) {
    if (info === null) return;
    state.info = info;
    document.getElementById("file-size").textContent = size(info.size);
    if (info.audio_only_bytes) {
      const share = (100 * info.audio_only_bytes / info.size).toFixed(1);
      document.getElementById("audio-share").textContent =
        "audio only: " + size(info.audio_only_bytes) + " (" + share + " %)";
    }
    offerLanguages(info.tracks || []);
  }).catch(function () { say("Could not read the file's tracks.", true); });

  function modeOf(name) {
    const url = new URL(name);
    if (url.origin !== location.origin || url.pathname !== mediaPath) return null;
    return url.searchParams.get("ali_audio_only") === "1" ? "audio" : "video";
  }

  function show() {
    ["video", "audio"].forEach(function (mode) {
      const shown = document.getElementById("bytes-" + mode);
      shown.textContent = size(totals[mode].bytes);
      shown.dataset.bytes = String(totals[mode].bytes);
      shown.dataset.responses = String(totals[mode].responses);
      const n = totals[mode].responses;
      document.getElementById("responses-" + mode).textContent =
        n === 0 ? "no response yet" : n + (n === 1 ? " response" : " responses");
    });
  }

  // Preferred: the service worker counts body bytes as they reach the player.
  function fromServiceWorker(message) {
    const said = message.data || {};
    if (said.mode !== "video" && said.mode !== "audio") return;
    if (said.vodedge === "response") {
      if (modeOf(said.url) === null) return;
      totals[said.mode].responses += 1;
    } else if (said.vodedge === "bytes") {
      totals[said.mode].bytes += said.bytes;
    }
    show();
  }

  // Otherwise (no service worker: a plain-HTTP page on another host than localhost),
  // Resource Timing's transferSize of each finished response.
  function fromResourceTiming() {
    performance.setResourceTimingBufferSize(10000);
    new PerformanceObserver(function (list) {
      list.getEntries().forEach(function (entry) {
        const mode = modeOf(entry.name);
        if (mode === null) return;
        totals[mode].bytes += entry.transferSize || 0;
        totals[mode].responses += 1;
      });
      show();
    }).observe({ type: "resource", buffered: true });
  }

  const COUNTED = {
    "service-worker": "Bytes are the response bodies each mode's media requests delivered to " +
      "the player over the network (this page's service worker fetches them past the " +
      "browser's cache and counts them as they arrive; a request the player abandons " +
      "counts what it delivered). Served by vodedge.",
    "resource-timing": "Bytes are what the browser reports receiving for each mode's media " +
      "requests (Resource Timing's transferSize, headers included) as each response " +
      "finishes; requests the player abandons may count less than they cost. Served by " +
      "vodedge.",
  };

  function counting() {
    const worker = navigator.serviceWorker;
    if (!worker || !window.isSecureContext) return Promise.resolve("resource-timing");
    worker.addEventListener("message", fromServiceWorker);
    return worker.register(data.counter, { scope: data.counterScope }).then(function () {
      if (worker.controller) return "service-worker";
      return new Promise(function (resolve) {
        worker.addEventListener("controllerchange", function () { resolve("service-worker"); },
                                { once: true });
        setTimeout(function () { resolve(worker.controller ? "service-worker" : "none"); }, 5000);
      });
    }).catch(function () { return "resource-timing"; });
  }

  counting().then(function (how) {
    if (how === "none") {
      stopListening();
      how = "resource-timing";
    }
    if (how === "resource-timing") fromResourceTiming();
    state.counting = how;
    document.getElementById("counting").textContent = COUNTED[how];
    show();
    load(0, false);
  });

  function stopListening() {
    navigator.serviceWorker.removeEventListener("message", fromServiceWorker);
  }
})();
