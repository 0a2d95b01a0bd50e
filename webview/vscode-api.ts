// The webview's handle on VS Code: typed postMessage and the state VS Code keeps for the
// view across hide/show and window reloads.

import type { WebviewToExtension } from '../src/panel/messages';

interface VsCodeApi {
  postMessage(message: unknown): unknown;
  getState(): unknown;
  setState(state: unknown): unknown;
}

declare function acquireVsCodeApi(): VsCodeApi;

export interface Host {
  post(message: WebviewToExtension): void;
  load(): unknown;
  save(state: unknown): void;
}

/** acquireVsCodeApi may be called once per page load; everything goes through this. */
export function connectHost(): Host {
  const api = acquireVsCodeApi();
  return {
    post: (message) => void api.postMessage(message),
    load: () => api.getState(),
    save: (state) => void api.setState(state),
  };
}
