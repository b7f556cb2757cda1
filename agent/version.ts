/** The agent's version, reported in Hello; kept equal to package.json's (a unit test checks). */
export const AGENT_VERSION = "0.1.0";
