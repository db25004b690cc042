/**
 * The 256 words of a ferry code (docs/security.md, "The code"). Each word
 * carries exactly 8 bits: its index is a byte.
 *
 * Chosen to be said over the phone and typed without a second look: common
 * concrete nouns, 4 to 7 lowercase ASCII letters, no homophones of another
 * everyday word (no "berry", "desert", "cereal"), no British/American spelling
 * pairs (no "harbor", "yogurt"), and no word is a prefix of another, so a
 * future completer can finish a word as soon as it is unambiguous. The list
 * is sorted. Changing it changes every code: it is part of the wire contract
 * as much as a frame type (the code is the password both sides hash).
 */
export const WORDS: readonly string[] = Object.freeze([
  'acorn', 'actor', 'agent', 'alarm', 'album', 'alpine', 'amber', 'anchor', 'apple', 'apron', 'arena', 'arrow',
  'atlas', 'attic', 'autumn', 'bacon', 'badge', 'bagel', 'baker', 'bamboo', 'banana', 'banjo', 'barrel', 'basil',
  'basket', 'beach', 'beacon', 'beaver', 'bench', 'bishop', 'blanket', 'blossom', 'border', 'bottle', 'branch', 'bread',
  'breeze', 'brick', 'bridge', 'broom', 'bucket', 'bundle', 'butter', 'button', 'cabin', 'cactus', 'camel', 'camera',
  'candle', 'canoe', 'canvas', 'canyon', 'carpet', 'carrot', 'castle', 'cedar', 'chair', 'chalk', 'cherry', 'chess',
  'cinema', 'circus', 'citrus', 'clock', 'cloud', 'clover', 'coast', 'cobalt', 'cocoa', 'comet', 'copper', 'coral',
  'cotton', 'cousin', 'crane', 'crayon', 'daisy', 'dancer', 'delta', 'diamond', 'dinner', 'dolphin', 'donkey', 'dragon',
  'drum', 'dune', 'eagle', 'earth', 'easel', 'echo', 'elbow', 'ember', 'engine', 'fabric', 'falcon', 'feather',
  'fern', 'field', 'finch', 'flame', 'flute', 'forest', 'fossil', 'frost', 'fruit', 'galaxy', 'garden', 'garlic',
  'giant', 'ginger', 'globe', 'goose', 'grape', 'gravel', 'guitar', 'hammer', 'harvest', 'hazel', 'helmet', 'honey',
  'horizon', 'hornet', 'hotel', 'husky', 'igloo', 'island', 'ivory', 'jacket', 'jaguar', 'jelly', 'jigsaw', 'jungle',
  'kayak', 'kettle', 'kitten', 'koala', 'ladder', 'lagoon', 'lantern', 'laptop', 'lemon', 'lentil', 'linen', 'lizard',
  'locket', 'lotus', 'magnet', 'mango', 'maple', 'marble', 'meadow', 'melon', 'mirror', 'mitten', 'monkey', 'moose',
  'mosaic', 'muffin', 'museum', 'napkin', 'needle', 'noodle', 'nutmeg', 'oasis', 'ocean', 'olive', 'onion', 'opera',
  'orange', 'orbit', 'orchid', 'otter', 'oyster', 'paddle', 'palace', 'panda', 'paper', 'parrot', 'pasta', 'peach',
  'peanut', 'pebble', 'pencil', 'pepper', 'piano', 'pickle', 'pigeon', 'pillow', 'pilot', 'pirate', 'planet', 'pocket',
  'poppy', 'potato', 'prism', 'pumpkin', 'puzzle', 'quill', 'rabbit', 'radar', 'radish', 'raven', 'ribbon', 'river',
  'robin', 'rocket', 'saddle', 'salmon', 'sandal', 'scarf', 'shadow', 'shell', 'shovel', 'silver', 'sketch', 'snail',
  'socket', 'spider', 'spoon', 'squid', 'stable', 'statue', 'stone', 'sugar', 'summer', 'sunset', 'tablet', 'tango',
  'teapot', 'temple', 'tennis', 'thunder', 'tiger', 'timber', 'toast', 'tomato', 'topaz', 'torch', 'tower', 'tulip',
  'tunnel', 'turtle', 'valley', 'velvet', 'violin', 'waffle', 'wagon', 'walnut', 'walrus', 'whale', 'willow', 'window',
  'winter', 'wizard', 'zebra', 'zipper',
]);
