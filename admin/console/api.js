// The console's only door to the server: the key (session storage only) and the admin API calls.
const KEY_SLOT = 'quilt.console.key';

export const getKey = () => sessionStorage.getItem(KEY_SLOT) || '';
export const setKey = (key) => sessionStorage.setItem(KEY_SLOT, key);
export const clearKey = () => sessionStorage.removeItem(KEY_SLOT);

// An answer other than 2xx; `message` is the server's error message when it sent the envelope.
export class ApiError extends Error {
  constructor(status, body) {
    const msg = body && body.error && body.error.message ? body.error.message : `HTTP ${status}`;
    super(msg);
    this.status = status;
    this.body = body;
  }
}

function parseBody(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// A JSON call to the admin API. Resolves to the parsed body; rejects with ApiError.
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${getKey()}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method, headers, cache: 'no-store', credentials: 'omit',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = parseBody(await r.text());
  // A key refused mid-session (revoked, expired, the server's admin key changed): the page
  // signs out rather than failing every call.
  if (r.status === 401) window.dispatchEvent(new Event('quilt-unauthorized'));
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export const enc = encodeURIComponent;

// GET /metrics as text (Prometheus exposition format).
export async function scrapeMetrics() {
  const r = await fetch('/metrics', {
    headers: { Authorization: `Bearer ${getKey()}` }, cache: 'no-store', credentials: 'omit',
  });
  const text = await r.text();
  if (!r.ok) throw new ApiError(r.status, parseBody(text));
  return text;
}

// PUT /admin/v1/adapters/{name} as multipart/form-data. XMLHttpRequest rather than fetch because
// only it reports upload progress: onProgress(sentBytes, totalBytes). Resolves to
// {status, body}; rejects with ApiError.
export function uploadAdapter(name, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', `/admin/v1/adapters/${enc(name)}`);
    xhr.setRequestHeader('Authorization', `Bearer ${getKey()}`);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onload = () => {
      const body = parseBody(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300) resolve({ status: xhr.status, body });
      else reject(new ApiError(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, { error: { message: 'network error: the upload did not reach the server' } }));
    xhr.send(form);
  });
}
