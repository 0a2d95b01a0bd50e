// The failure status vocabulary, the one source for the failure record (failure.ts), the stores and
// the panel's contract (panel/messages.ts, which the webview bundles: so no Node here).

export const FAILURE_STATUSES = ['pending', 'repaired', 'unfixed', 'discarded'] as const;
export type FailureStatus = (typeof FAILURE_STATUSES)[number];
