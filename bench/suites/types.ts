export interface SuiteResult {
  readonly rows: readonly Record<string, unknown>[];
  readonly markdown: string;
}

export interface Suite {
  readonly name: string;
  readonly description: string;
  run(opts: { quick: boolean; log: (line: string) => void }): Promise<SuiteResult>;
}
