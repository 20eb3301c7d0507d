//! The word lists behind the Character, the friendly face derived from a public key: 256
//! adjectives, 256 nouns and 128 emoji with their ASCII tags.
//!
//! These lists are part of the signed-identity derivation: each entry is picked by index from a
//! hash of the DID by one byte (seven bits for emoji), so each list has exactly 256, 256 and 128
//! entries and is fixed for Character version 1: changing, removing, reordering or adding an
//! entry changes agents' faces and is a new Character version (docs/ARCHITECTURE.md (g)).

/// Adjectives, lowercase a-z, 3 to 8 letters.
pub const ADJECTIVES: &[&str] = &[
    "noble", "winter", "cedar", "quiet", "amber", "brave", "misty", "autumn", "summer", "spring",
    "vernal", "wintry", "gentle", "silver", "bright", "calm", "clear", "cool", "crisp", "keen",
    "kind", "lively", "lofty", "lucky", "lunar", "solar", "polar", "stellar", "cosmic", "mellow",
    "merry", "jolly", "cheery", "happy", "mild", "mossy", "leafy", "ocean", "olive", "rapid",
    "rosy", "rustic", "sandy", "serene", "silent", "silken", "sleek", "snowy", "frosty", "stormy",
    "sunny", "rainy", "cloudy", "breezy", "airy", "gusty", "swift", "quick", "tidal", "coastal",
    "alpine", "arctic", "boreal", "sylvan", "velvet", "satin", "linen", "vivid", "warm", "wise",
    "witty", "azure", "cobalt", "coral", "ruby", "jade", "topaz", "opal", "onyx", "emerald",
    "indigo", "violet", "lilac", "teal", "russet", "sienna", "umber", "ochre", "sepia", "sage",
    "hazel", "tawny", "plum", "apricot", "copper", "bronze", "granite", "birch", "maple", "aspen",
    "alder", "hickory", "oaken", "bold", "clever", "nimble", "steady", "sturdy", "hardy", "humble",
    "modest", "loyal", "honest", "patient", "earnest", "eager", "ardent", "candid", "cordial",
    "daring", "dapper", "deft", "elegant", "fearless", "gallant", "genial", "graceful", "hearty",
    "helpful", "hopeful", "jovial", "joyful", "joyous", "kindly", "lucid", "mindful", "nifty",
    "polite", "prudent", "radiant", "ready", "sincere", "smart", "spry", "stalwart", "tidy",
    "tireless", "trusty", "upbeat", "valiant", "vibrant", "vigilant", "agile", "alert", "amiable",
    "astute", "avid", "blithe", "brisk", "buoyant", "capable", "careful", "charming", "chipper",
    "classic", "clean", "curious", "dashing", "dazzling", "eloquent", "epic", "ethereal", "fabled",
    "festive", "fleet", "fluent", "fond", "fresh", "friendly", "glad", "gleeful", "glowing",
    "grand", "grateful", "hidden", "ideal", "intrepid", "jaunty", "kindred", "lasting", "little",
    "lucent", "luminous", "majestic", "mighty", "modern", "neat", "novel", "placid", "playful",
    "plucky", "polished", "precise", "pristine", "prompt", "quaint", "rare", "robust", "splendid",
    "sterling", "subtle", "superb", "thrifty", "timely", "tranquil", "true", "verdant", "vital",
    "wistful", "dewy", "downy", "feathery", "starry", "starlit", "moonlit", "sunlit", "dappled",
    "floral", "frozen", "glacial", "wild", "evening", "midnight", "twilight", "hushed", "gilded",
    "glossy", "cozy", "snug", "tropic", "oceanic", "harvest", "autumnal", "frosted", "cheerful",
    "dreamy", "snappy", "dulcet", "lyric", "musical", "melodic", "poetic", "woven", "gleaming",
    "platinum", "green",
];

/// Nouns, lowercase a-z, 3 to 8 letters, none also an adjective above.
pub const NOUNS: &[&str] = &[
    "creek", "bay", "bayou", "canyon", "meadow", "slate", "harbor", "ridge", "cove", "inlet",
    "fjord", "lagoon", "atoll", "reef", "shoal", "shore", "coast", "beach", "strand", "dune",
    "surf", "tide", "wave", "swell", "ripple", "eddy", "rapids", "cascade", "brook", "rill",
    "fountain", "geyser", "pond", "lake", "loch", "tarn", "basin", "channel", "haven", "marina",
    "wharf", "pier", "jetty", "anchor", "buoy", "beacon", "lantern", "estuary", "delta", "isle",
    "island", "cape", "headland", "glacier", "floe", "summit", "peak", "crest", "crag", "bluff",
    "cliff", "ledge", "knoll", "hill", "mesa", "plateau", "upland", "highland", "valley", "vale",
    "dale", "dell", "glen", "hollow", "gorge", "ravine", "arroyo", "grotto", "cavern", "cave",
    "nest", "field", "pasture", "prairie", "steppe", "savanna", "tundra", "taiga", "heath", "fen",
    "marsh", "oasis", "grove", "forest", "thicket", "glade", "clearing", "orchard", "garden",
    "arbor", "terrace", "hedge", "lane", "trail", "path", "bridge", "cabin", "cottage", "chalet",
    "lodge", "hearth", "sky", "cloud", "star", "comet", "moon", "sun", "aurora", "nebula",
    "galaxy", "cosmos", "orbit", "zenith", "horizon", "dawn", "dusk", "sunrise", "sunset",
    "rainbow", "breeze", "gale", "gust", "storm", "thunder", "rain", "mist", "fog", "frost",
    "snow", "flurry", "zephyr", "tempest", "eclipse", "meteor", "planet", "stardust", "moonbeam",
    "sunbeam", "sunshine", "solstice", "equinox", "nimbus", "dew", "drift", "oak", "elm", "pine",
    "fir", "spruce", "larch", "poplar", "cypress", "willow", "sequoia", "redwood", "magnolia",
    "linden", "hawthorn", "rowan", "juniper", "laurel", "holly", "ivy", "fern", "moss", "lichen",
    "reed", "clover", "thistle", "heather", "lily", "lotus", "daisy", "tulip", "aster", "dahlia",
    "peony", "yarrow", "acorn", "pinecone", "sprout", "blossom", "petal", "bloom", "leaf", "bough",
    "branch", "sapling", "berry", "bramble", "briar", "vine", "bamboo", "cactus", "yucca",
    "camellia", "wisteria", "primrose", "bluebell", "foxglove", "snowdrop", "marigold", "jasmine",
    "lavender", "azalea", "hibiscus", "pebble", "quartz", "agate", "garnet", "marble", "crystal",
    "ember", "spark", "flint", "feather", "shell", "kite", "compass", "bell", "quill", "flute",
    "cello", "ribbon", "quilt", "canoe", "kayak", "raft", "sail", "prism", "globe", "atlas",
    "canvas", "mosaic", "sundial", "chime", "sonnet", "ballad", "melody", "echo", "fable",
    "legend", "saga", "poem", "haiku", "candle",
];

/// Emoji with the ASCII tag shown where emoji can't render (`[bear] cedar-bayou`).
pub const EMOJI: &[(&str, &str)] = &[
    ("🐻", "bear"),
    ("🦊", "fox"),
    ("🐅", "tiger"),
    ("🦁", "lion"),
    ("🐺", "wolf"),
    ("🐼", "panda"),
    ("🐨", "koala"),
    ("🐧", "penguin"),
    ("🐦", "bird"),
    ("🦆", "duck"),
    ("🦉", "owl"),
    ("🐴", "horse"),
    ("🦄", "unicorn"),
    ("🐝", "bee"),
    ("🦋", "butterfly"),
    ("🐌", "snail"),
    ("🐞", "ladybug"),
    ("🐢", "turtle"),
    ("🦎", "lizard"),
    ("🐙", "octopus"),
    ("🦑", "squid"),
    ("🦀", "crab"),
    ("🦞", "lobster"),
    ("🐠", "tropical"),
    ("🐬", "dolphin"),
    ("🐋", "whale"),
    ("🦈", "shark"),
    ("🐊", "croc"),
    ("🦓", "zebra"),
    ("🦒", "giraffe"),
    ("🦏", "rhino"),
    ("🦛", "hippo"),
    ("🦘", "kangaroo"),
    ("🦬", "bison"),
    ("🐃", "buffalo"),
    ("🐐", "goat"),
    ("🦌", "deer"),
    ("🐈", "cat"),
    ("🐇", "rabbit"),
    ("🦔", "hedgehog"),
    ("🦦", "otter"),
    ("🦜", "parrot"),
    ("🦢", "swan"),
    ("🦩", "flamingo"),
    ("🐉", "dragon"),
    ("🦕", "sauropod"),
    ("🦖", "trex"),
    ("🐡", "blowfish"),
    ("🦭", "seal"),
    ("🐆", "leopard"),
    ("🐂", "ox"),
    ("🦙", "llama"),
    ("🐚", "shell"),
    ("🐛", "bug"),
    ("🐜", "ant"),
    ("🪲", "beetle"),
    ("🦗", "cricket"),
    ("🦪", "oyster"),
    ("🐟", "fish"),
    ("🌵", "cactus"),
    ("🌲", "evergreen"),
    ("🌳", "tree"),
    ("🌴", "palm"),
    ("🌱", "seedling"),
    ("🌿", "herb"),
    ("🍀", "clover"),
    ("🍁", "maple"),
    ("🍂", "leaves"),
    ("🍃", "leaf"),
    ("🌾", "grain"),
    ("🌷", "tulip"),
    ("🌹", "rose"),
    ("🌺", "hibiscus"),
    ("🌸", "blossom"),
    ("🌼", "daisy"),
    ("🌻", "sunflower"),
    ("🪴", "plant"),
    ("🍎", "apple"),
    ("🍐", "pear"),
    ("🍊", "orange"),
    ("🍋", "lemon"),
    ("🍇", "grapes"),
    ("🍓", "strawberry"),
    ("🫐", "blueberry"),
    ("🥭", "mango"),
    ("🍍", "pineapple"),
    ("🥝", "kiwi"),
    ("🥑", "avocado"),
    ("🌽", "corn"),
    ("🥕", "carrot"),
    ("🥦", "broccoli"),
    ("🍅", "tomato"),
    ("🫑", "pepper"),
    ("🍯", "honey"),
    ("🌅", "sunrise"),
    ("🌙", "moon"),
    ("🌕", "fullmoon"),
    ("⭐", "star"),
    ("🌟", "glow"),
    ("🌠", "meteor"),
    ("🌈", "rainbow"),
    ("⛅", "cloudy"),
    ("❄️", "snowflake"),
    ("⛄", "snowman"),
    ("🌊", "wave"),
    ("💧", "droplet"),
    ("⚡", "zap"),
    ("🔥", "fire"),
    ("🌋", "volcano"),
    ("🗻", "fuji"),
    ("🌌", "galaxy"),
    ("🌍", "earth"),
    ("🪐", "planet"),
    ("🌀", "swirl"),
    ("☔", "umbrella"),
    ("🧭", "compass"),
    ("⚓", "anchor"),
    ("🔔", "bell"),
    ("🎈", "balloon"),
    ("🪁", "kite"),
    ("🎐", "chime"),
    ("🏮", "lantern"),
    ("🔭", "telescope"),
    ("🛶", "canoe"),
    ("⛵", "sailboat"),
    ("💎", "gem"),
    ("🪶", "feather"),
    ("🎨", "palette"),
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn word_ok(w: &str) -> bool {
        (3..=8).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase())
    }

    #[test]
    fn sizes_are_exact() {
        assert_eq!(ADJECTIVES.len(), 256);
        assert_eq!(NOUNS.len(), 256);
        assert_eq!(EMOJI.len(), 128);
    }

    #[test]
    fn words_are_well_formed_and_distinct_across_both_lists() {
        let mut seen = HashSet::new();
        for w in ADJECTIVES.iter().chain(NOUNS) {
            assert!(word_ok(w), "{w:?} is not 3 to 8 lowercase ASCII letters");
            assert!(seen.insert(*w), "{w:?} appears twice");
        }
        assert_eq!(seen.len(), 512);
    }

    #[test]
    fn emoji_and_tags_are_well_formed_and_distinct() {
        let mut emoji = HashSet::new();
        let mut tags = HashSet::new();
        for (e, t) in EMOJI {
            assert!(!e.is_empty() && !e.is_ascii(), "{e:?} is not an emoji");
            assert!(
                (2..=10).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_lowercase()),
                "{t:?} is not 2 to 10 lowercase ASCII letters"
            );
            assert!(emoji.insert(*e), "{e:?} appears twice");
            assert!(tags.insert(*t), "{t:?} appears twice");
        }
    }
}
