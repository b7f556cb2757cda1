export type { PlannedMove } from "./moves.js";
