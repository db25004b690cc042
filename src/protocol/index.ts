/** The pure wire codec (docs/protocol.md): constants, messages, decoder, name rules, errors. */
export * from './constants.js';
export * from './errors.js';
export * from './messages.js';
export * from './decoder.js';
export * from './names.js';
