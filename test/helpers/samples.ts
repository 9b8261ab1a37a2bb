// The duplicity fixtures (made by real duplicity 0.8.22, gpg 2.2 and rdiff; see the README there),
// kept in the repository so the tests need nothing outside it. OFFSITE_DUP_SAMPLES points elsewhere.
import * as path from 'node:path';

export const SAMPLES = process.env.OFFSITE_DUP_SAMPLES ?? path.resolve(__dirname, '..', 'fixtures', 'duplicity');
