import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Search attributes of a job workflow: operators filter by them in the Temporal UI, the API lists a consumer's jobs with them. */
export const C2DOwner = defineSearchAttributeKey('C2DOwner', SearchAttributeType.KEYWORD);
export const C2DStatus = defineSearchAttributeKey('C2DStatus', SearchAttributeType.INT);
export const C2DEnvironment = defineSearchAttributeKey('C2DEnvironment', SearchAttributeType.KEYWORD);
export const C2DDatasetDids = defineSearchAttributeKey('C2DDatasetDids', SearchAttributeType.KEYWORD_LIST);
export const C2DAlgorithmDid = defineSearchAttributeKey('C2DAlgorithmDid', SearchAttributeType.KEYWORD);

/** name → type as the dev server's --search-attribute flag spells it */
export const searchAttributeFlags: Record<string, 'Keyword' | 'Int' | 'KeywordList'> = {
  C2DOwner: 'Keyword',
  C2DStatus: 'Int',
  C2DEnvironment: 'Keyword',
  C2DDatasetDids: 'KeywordList',
  C2DAlgorithmDid: 'Keyword',
};
