"use strict";
// The listening page's byte counter: every same-origin media response its page fetches
// passes through here, fetched past the browser's HTTP cache, and each chunk's size is
// reported to the page as it reaches the player (abandoned requests count what they
// delivered, which Resource Timing misses).
self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });

self.addEventListener("fetch", function (event) {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith("/_vodedge/")) return;
  if (!event.clientId && !event.resultingClientId) return;
  event.respondWith(counted(event, url));
});

async function counted(event, url) {
  // Past the HTTP cache: what is counted is what came over the network. A copy of the
  // player's request would lose its Range (a no-cors request's privileged header), so the
  // same request is made anew, same-origin, with the Range the player asked for.
  const headers = new Headers();
  ["Range", "If-Range"].forEach(function (name) {
    const value = event.request.headers.get(name);
    if (value !== null) headers.set(name, value);
  });
  const answer = await fetch(url.href, { headers: headers, cache: "no-store",
                                         mode: "same-origin", credentials: "same-origin" });
  const client = await self.clients.get(event.clientId);
  if (!client || !answer.body || answer.type !== "basic") return answer;
  const mode = url.searchParams.get("ali_audio_only") === "1" ? "audio" : "video";
  client.postMessage({ vodedge: "response", mode: mode, url: url.href, status: answer.status });
  const counter = new TransformStream({
    transform: function (chunk, controller) {
      client.postMessage({ vodedge: "bytes", mode: mode, bytes: chunk.byteLength });
      controller.enqueue(chunk);
    },
  });
  return new Response(answer.body.pipeThrough(counter), {
    status: answer.status, statusText: answer.statusText, headers: answer.headers,
  });
}
