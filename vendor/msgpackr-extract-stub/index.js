// Exports nothing: msgpackr (used by BullMQ) then uses its pure JavaScript string extractor.
module.exports = undefined;
