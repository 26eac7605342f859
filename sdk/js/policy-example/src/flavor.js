// The component's entry point: componentize-js builds this module and
// exports the object named after the WIT interface, `flavor`.

import { exportFlavor } from './flavorbox-kit.js';
import { logic } from './logic.js';
// The WIT `host` interface (`log`, `repository-exists`), provided by componentize-js.
import * as witHost from 'flavorbox:registry/host@0.2.0';

export const flavor = exportFlavor(logic, witHost);
