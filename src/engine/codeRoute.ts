// The name of the way a command or request went, for the launchers' code cache (src/launch/codeCache.ts):
// a backup the no-change probe stood for runs other code than one that walked, a full backup other code
// than an incremental, a path restore other code than a whole one. Named alike by the CLI and the
// engine process (their codeRoutes() exports), so both caches list the same routes.
export function codeRoute(command: string, outcome: { readonly type?: string; readonly probed?: boolean; readonly path?: unknown } = {}): string {
  if (command === 'backup' && outcome.type !== undefined) return `backup:${outcome.type}${outcome.probed ? '-probe' : ''}`;
  if (command === 'restore') return `restore:${outcome.path === undefined ? 'all' : 'path'}`;
  return command;
}
