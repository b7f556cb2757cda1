/** Submissions in one SubmitLeases call at most (the handler and the auth guard both hold to it). */
export const MAX_SUBMIT_BATCH = 1000;
