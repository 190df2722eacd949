import { ENTERPRISE_USER } from './patch.js';
import { GROUP_SCHEMA, USER_SCHEMA } from './resources.js';

/**
 * Discovery (RFC 7644 §4): what this service provider supports, the resource types and their
 * schemas — what clients read before they sync. Kept true to server/scim/service.ts.
 */
export const MAX_RESULTS = 200;

export function serviceProviderConfig(base: string) {
  return {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: true, maxResults: MAX_RESULTS },
    changePassword: { supported: false },
    sort: { supported: false },
    etag: { supported: false },
    authenticationSchemes: [
      { type: 'oauthbearertoken', name: 'Bearer token', description: 'A per-tenant SCIM token from `enclave scim token create --tenant T`.', primary: true },
    ],
    meta: { resourceType: 'ServiceProviderConfig', location: `${base}/ServiceProviderConfig` },
  };
}

export function resourceTypes(base: string) {
  return [
    {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:ResourceType'],
      id: 'User',
      name: 'User',
      endpoint: '/Users',
      description: 'A person: an Enclave account and its membership in this tenant',
      schema: USER_SCHEMA,
      schemaExtensions: [{ schema: ENTERPRISE_USER, required: false }],
      meta: { resourceType: 'ResourceType', location: `${base}/ResourceTypes/User` },
    },
    {
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:ResourceType'],
      id: 'Group',
      name: 'Group',
      endpoint: '/Groups',
      description: 'A group of the directory',
      schema: GROUP_SCHEMA,
      meta: { resourceType: 'ResourceType', location: `${base}/ResourceTypes/Group` },
    },
  ];
}

type Attr = {
  name: string;
  type: 'string' | 'boolean' | 'complex' | 'reference' | 'dateTime';
  multiValued?: boolean;
  required?: boolean;
  caseExact?: boolean;
  mutability?: 'readOnly' | 'readWrite' | 'immutable' | 'writeOnly';
  uniqueness?: 'none' | 'server' | 'global';
  subAttributes?: Attr[];
  referenceTypes?: string[];
};

function attr(a: Attr): Record<string, unknown> {
  return {
    name: a.name,
    type: a.type,
    multiValued: a.multiValued ?? false,
    description: '',
    required: a.required ?? false,
    caseExact: a.caseExact ?? false,
    mutability: a.mutability ?? 'readWrite',
    returned: 'default',
    uniqueness: a.uniqueness ?? 'none',
    ...(a.subAttributes ? { subAttributes: a.subAttributes.map(attr) } : {}),
    ...(a.referenceTypes ? { referenceTypes: a.referenceTypes } : {}),
  };
}

const s = (name: string, extra: Partial<Attr> = {}): Attr => ({ name, type: 'string', ...extra });
const multi = (name: string): Attr => ({ name, type: 'complex', multiValued: true, subAttributes: [s('value'), s('type'), { name: 'primary', type: 'boolean' }, s('display')] });

export function schemas(base: string) {
  const meta = (id: string) => ({ resourceType: 'Schema', location: `${base}/Schemas/${id}` });
  return [
    {
      id: USER_SCHEMA,
      name: 'User',
      description: 'User Account',
      attributes: [
        s('userName', { required: true, uniqueness: 'server' }),
        s('externalId', { caseExact: true }),
        { name: 'name', type: 'complex', subAttributes: ['formatted', 'familyName', 'givenName', 'middleName', 'honorificPrefix', 'honorificSuffix'].map((n) => s(n)) },
        s('displayName'),
        s('nickName'),
        s('title'),
        s('userType'),
        s('preferredLanguage'),
        s('locale'),
        s('timezone'),
        { name: 'active', type: 'boolean' },
        multi('emails'),
        multi('phoneNumbers'),
        {
          name: 'addresses',
          type: 'complex',
          multiValued: true,
          subAttributes: ['formatted', 'streetAddress', 'locality', 'region', 'postalCode', 'country', 'type'].map((n) => s(n)).concat([{ name: 'primary', type: 'boolean' }]),
        },
        { name: 'groups', type: 'complex', multiValued: true, mutability: 'readOnly', subAttributes: [s('value', { mutability: 'readOnly' }), s('display', { mutability: 'readOnly' })] },
      ].map((a) => attr(a as Attr)),
      meta: meta(USER_SCHEMA),
    },
    {
      id: ENTERPRISE_USER,
      name: 'EnterpriseUser',
      description: 'Enterprise User',
      attributes: [
        s('employeeNumber'),
        s('costCenter'),
        s('organization'),
        s('division'),
        s('department'),
        { name: 'manager', type: 'complex', subAttributes: [s('value'), s('displayName', { mutability: 'readOnly' })] },
      ].map((a) => attr(a as Attr)),
      meta: meta(ENTERPRISE_USER),
    },
    {
      id: GROUP_SCHEMA,
      name: 'Group',
      description: 'Group',
      attributes: [
        s('displayName', { required: true, uniqueness: 'server' }),
        s('externalId', { caseExact: true }),
        { name: 'members', type: 'complex', multiValued: true, subAttributes: [s('value', { mutability: 'immutable' }), s('display', { mutability: 'readOnly' })] },
      ].map((a) => attr(a as Attr)),
      meta: meta(GROUP_SCHEMA),
    },
  ];
}
