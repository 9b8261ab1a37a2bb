// The statistics block duplicity prints, as Offsite prints it: StartTime and EndTime in
// time.asctime(time.localtime(t)) form ("Fri Nov 27 08:21:43 2026", the day padded with a space).
import * as assert from 'node:assert/strict';
import { emptyStats, formatStats } from '../../../src/engine/ops/stats';

describe('formatStats', () => {
  it("writes StartTime/EndTime as Python's time.asctime does, for every weekday and month", () => {
    // One time per month of 2026, on days that cover every weekday and one- and two-digit days.
    for (let m = 0; m < 12; m++) {
      const d = new Date(2026, m, 1 + ((m * 3) % 28), 7 + m, 5, 9);
      const t = d.getTime() / 1000;
      const text = formatStats({ ...emptyStats(t), StartTime: t, EndTime: t + 61 });
      const expected = `${d.toLocaleString('en-US', { weekday: 'short' })} ${d.toLocaleString('en-US', { month: 'short' })} ${String(d.getDate()).padStart(2, ' ')} ${String(d.getHours()).padStart(2, '0')}:05:09 2026`;
      assert.ok(text.includes(`StartTime ${t.toFixed(2)} (${expected})`), `${expected} in\n${text}`);
      assert.match(text, new RegExp(`EndTime ${(t + 61).toFixed(2)} \\(\\w{3} \\w{3} [ \\d]\\d ${String(d.getHours()).padStart(2, '0')}:06:10 2026\\)`));
    }
  });
});
