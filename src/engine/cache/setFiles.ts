// Per-set files of the cache folder that Offsite adds beside duplicity's: `<prefix>.<time of the set>`
// (the stat cache, the folder listings, the .gitignore rule inputs). Only the newest of each kind is
// kept; temporaries (NAME.tmp-PID, NAME.PID.HEX.tmp) are not of the kind.
export class SetFileKind {
  private readonly pattern: RegExp;

  /** `prefix`: letters and dashes (it goes into a pattern as it is). */
  constructor(private readonly prefix: string) {
    this.pattern = new RegExp(`^${prefix}\\.(\\d{8}T\\d{6}Z)$`);
  }

  /** The file of the set of `time` (duplicity's time string). */
  name(time: string): string {
    return `${this.prefix}.${time}`;
  }

  /** The set time in `name`, or undefined when `name` is not of this kind. */
  timeOf(name: string): string | undefined {
    return this.pattern.exec(name)?.[1];
  }
}
