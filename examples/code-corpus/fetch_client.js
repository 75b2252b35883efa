// A small HTTP client with a response cache.
const responseCache = new Map();

async function fetchJson(requestUrl) {
  if (responseCache.has(requestUrl)) {
    return responseCache.get(requestUrl);
  }
  const response = await fetch(requestUrl);
  if (!response.ok) {
    throw new Error(`request failed: ${response.status}`);
  }
  const data = await response.json();
  responseCache.set(requestUrl, data);
  return data;
}

function clearResponseCache() {
  responseCache.clear();
}

module.exports = { fetchJson, clearResponseCache };
