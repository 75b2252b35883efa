export * from './config';
export * from './events';
