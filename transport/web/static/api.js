/* opsreg dashboard: the one JSON call to the gateway (bearer token, errors as ApiError) and
 * the token form it opens on a 401.
 */
import { $, state } from './util.js';

export class ApiError extends Error {
  constructor(status, cls, message, fields) {
    super(message);
    this.status = status;
    this.cls = cls;
    this.fields = fields || {};
  }
  get transient() { return this.status === 0 || this.status === 503; }
}

/** One JSON call to the gateway. Never logs: callers show errors in the page. */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'Unreachable', 'the gateway cannot be reached');
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (resp.ok) return data;
  const err = (data && data.error) || {};
  if (resp.status === 401) {
    state.needToken = true;
    askToken();
  }
  throw new ApiError(resp.status, err.class || `HTTP ${resp.status}`,
    err.message || resp.statusText || 'request failed', err.fields);
}

// ---------------------------------------------------------------- token

export function askToken() {
  const box = $('auth');
  if (!box.hidden) return;
  box.hidden = false;
  $('auth-token').focus();
}
