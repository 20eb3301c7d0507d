//! The word lists behind the Character: 256 adjectives, 256 nouns and 128 emoji with their
//! ASCII tags.
//!
//! These lists are part of the identity derivation (docs/PROTOCOL.md §Character): an entry is
//! picked by index from a hash of the DID. Changing, removing or reordering an entry changes
//! agents' faces, so the lists are fixed for Character version 1; a change is a new version.

/// Adjectives, lowercase a-z, 3 to 8 letters.
pub const ADJECTIVES: &[&str] = &[
    "able", "amber", "ancient", "apple", "april", "arctic", "ardent", "aspen", "astral", "august",
    "autumn", "azure", "balmy", "bold", "brave", "breezy", "bright", "brisk", "bronze", "calm",
    "candid", "careful", "cedar", "certain", "cheerful", "cherry", "clever", "cloudy", "coastal",
    "cobalt", "comet", "cool", "copper", "coral", "cosmic", "cozy", "crimson", "crisp", "curious",
    "dapper", "dawn", "daring", "dear", "deep", "dewy", "distant", "dusky", "eager", "early",
    "earnest", "easy", "eastern", "ebony", "elder", "electric", "elegant", "ember", "emerald",
    "endless", "epic", "even", "evening", "fabled", "fair", "faithful", "fancy", "far", "feather",
    "fern", "fiery", "fine", "firm", "first", "fleet", "floral", "fluent", "flying", "foggy",
    "forest", "fortune", "frank", "free", "fresh", "friendly", "frosty", "gallant", "gentle",
    "giant", "gilded", "ginger", "glad", "glassy", "glowing", "golden", "good", "graceful",
    "grand", "granite", "grateful", "green", "hale", "happy", "hardy", "harvest", "hazel",
    "hearty", "hidden", "high", "hollow", "honest", "honey", "humble", "icy", "idle", "indigo",
    "inner", "iron", "ivory", "jade", "jolly", "jovial", "joyful", "june", "keen", "kind",
    "lasting", "late", "lavender", "leafy", "light", "lilac", "linen", "little", "lively", "loyal",
    "lucid", "lucky", "lunar", "lush", "magic", "maple", "marble", "mellow", "merry", "midnight",
    "mighty", "mild", "mint", "misty", "modest", "morning", "mossy", "mystic", "narrow", "nimble",
    "noble", "north", "northern", "novel", "oaken", "ocean", "olive", "onyx", "opal", "open",
    "orange", "orchid", "outer", "pale", "patient", "peach", "pearl", "peppy", "pine", "placid",
    "plain", "plucky", "polar", "polished", "prairie", "precious", "prime", "proud", "pure",
    "quaint", "quick", "quiet", "radiant", "rainy", "rapid", "rare", "ready", "regal", "rich",
    "river", "robust", "rosy", "royal", "ruby", "rustic", "sable", "sage", "salty", "sandy",
    "sapphire", "satin", "scarlet", "secret", "serene", "shady", "sharp", "shining", "silent",
    "silken", "silver", "simple", "sleek", "slow", "smart", "smooth", "snowy", "soft", "solar",
    "solid", "spring", "spry", "starry", "steady", "steel", "still", "stone", "stormy", "sturdy",
    "summer", "sunny", "sunlit", "swift", "tall", "tawny", "teal", "tender", "thrifty", "tidal",
    "tidy", "timber", "topaz", "tranquil", "true", "trusty", "twilight", "upper", "valiant",
    "velvet", "vernal", "vivid", "warm",
];

/// Nouns, lowercase a-z, 3 to 8 letters, none also an adjective above.
pub const NOUNS: &[&str] = &[
    "acorn", "alder", "anchor", "arbor", "arch", "atlas", "aurora", "badger", "bamboo", "bank",
    "basin", "bay", "bayou", "beacon", "beach", "bear", "bell", "berry", "birch", "bird", "bloom",
    "blossom", "bluff", "boulder", "branch", "breeze", "brook", "butte", "cabin", "cairn", "camp",
    "canal", "canyon", "cape", "cascade", "castle", "cave", "cello", "chalk", "channel", "chapel",
    "cliff", "clover", "cloud", "coast", "cobble", "compass", "cone", "cove", "crane", "creek",
    "crest", "crown", "current", "cypress", "dale", "delta", "desert", "dew", "dingo", "dome",
    "dove", "dune", "eagle", "echo", "eddy", "elm", "falcon", "ferry", "field", "finch", "fjord",
    "flame", "flint", "flower", "fog", "fountain", "fox", "garden", "gate", "geyser", "glacier",
    "glade", "glen", "gorge", "grove", "gulf", "gull", "harbor", "hawk", "heath", "heron", "hill",
    "horizon", "island", "ivy", "jasper", "juniper", "kestrel", "kettle", "lagoon", "lake",
    "lantern", "larch", "lark", "laurel", "ledge", "lily", "linden", "lodge", "lotus", "lynx",
    "marsh", "meadow", "mesa", "mill", "mist", "moon", "moor", "moss", "mountain", "nest", "oak",
    "oasis", "orchard", "osprey", "otter", "owl", "paddle", "palm", "panda", "path", "peak",
    "pebble", "pelican", "pier", "plover", "pond", "poplar", "quail", "quarry", "rain", "rapids",
    "raven", "reef", "ridge", "robin", "rock", "rose", "sail", "sand", "savanna", "sea", "shell",
    "shore", "sky", "slate", "slope", "snow", "sparrow", "spruce", "star", "storm", "stream",
    "summit", "sun", "swallow", "swan", "tarn", "thicket", "thistle", "thunder", "tide", "trail",
    "tree", "tulip", "tundra", "vale", "valley", "violet", "vista", "walnut", "wave", "wind",
    "wren", "yarrow", "zephyr", "acre", "atoll", "bough", "brim", "canopy", "clearing", "crater",
    "dell", "den", "drift", "dusk", "estuary", "floe", "frost", "garnet", "gem", "glimmer",
    "gravel", "haven", "hearth", "hedge", "inlet", "isle", "jetty", "kelp", "knoll", "lane",
    "leaf", "lichen", "loch", "mallow", "marina", "mirror", "moraine", "nook", "orbit", "pasture",
    "pillar", "pinnacle", "plateau", "prism", "quartz", "rill", "riverbed", "saddle", "sequoia",
    "shoal", "sierra", "spire", "sprout", "strand", "swale", "terrace", "tor", "torrent", "upland",
    "vineyard", "wharf", "woodland", "grotto", "mangrove", "heather", "seagrass", "sunbeam",
    "rainbow", "starling", "bramble", "cinder", "petal",
];

/// Emoji with the ASCII tag shown where emoji can't render (`[bear] cedar-bayou`).
pub const EMOJI: &[(&str, &str)] = &[
    ("🐻", "bear"),
    ("🦊", "fox"),
    ("🐅", "tiger"),
    ("🦁", "lion"),
    ("🐺", "wolf"),
    ("🦝", "raccoon"),
    ("🐼", "panda"),
    ("🐨", "koala"),
    ("🐸", "frog"),
    ("🐧", "penguin"),
    ("🐦", "bird"),
    ("🦆", "duck"),
    ("🦅", "eagle"),
    ("🦉", "owl"),
    ("🦇", "bat"),
    ("🐗", "boar"),
    ("🐴", "horse"),
    ("🦄", "unicorn"),
    ("🐝", "bee"),
    ("🦋", "butterfly"),
    ("🐌", "snail"),
    ("🐞", "ladybug"),
    ("🐢", "turtle"),
    ("🐍", "snake"),
    ("🦎", "lizard"),
    ("🐙", "octopus"),
    ("🦑", "squid"),
    ("🦀", "crab"),
    ("🦞", "lobster"),
    ("🐠", "fish"),
    ("🐬", "dolphin"),
    ("🐳", "whale"),
    ("🦈", "shark"),
    ("🐊", "croc"),
    ("🦓", "zebra"),
    ("🦒", "giraffe"),
    ("🐘", "elephant"),
    ("🦏", "rhino"),
    ("🐪", "camel"),
    ("🦘", "kangaroo"),
    ("🦬", "bison"),
    ("🐃", "buffalo"),
    ("🐑", "sheep"),
    ("🐐", "goat"),
    ("🦌", "deer"),
    ("🐕", "dog"),
    ("🐈", "cat"),
    ("🐇", "rabbit"),
    ("🐿️", "chipmunk"),
    ("🦔", "hedgehog"),
    ("🦦", "otter"),
    ("🦥", "sloth"),
    ("🦨", "skunk"),
    ("🦡", "badger"),
    ("🦃", "turkey"),
    ("🦚", "peacock"),
    ("🦜", "parrot"),
    ("🦢", "swan"),
    ("🦩", "flamingo"),
    ("🕊️", "dove"),
    ("🐉", "dragon"),
    ("🦕", "sauropod"),
    ("🦖", "trex"),
    ("🐡", "blowfish"),
    ("🦭", "seal"),
    ("🌵", "cactus"),
    ("🌲", "evergreen"),
    ("🌳", "tree"),
    ("🌴", "palm"),
    ("🌱", "seedling"),
    ("🌿", "herb"),
    ("🍀", "clover"),
    ("🍁", "maple"),
    ("🍂", "leaves"),
    ("🍄", "mushroom"),
    ("🌾", "rice"),
    ("🌷", "tulip"),
    ("🌹", "rose"),
    ("🌺", "hibiscus"),
    ("🌸", "blossom"),
    ("🌼", "daisy"),
    ("🌻", "sunflower"),
    ("🪷", "lotus"),
    ("🍎", "apple"),
    ("🍐", "pear"),
    ("🍊", "orange"),
    ("🍋", "lemon"),
    ("🍌", "banana"),
    ("🍉", "melon"),
    ("🍇", "grapes"),
    ("🍓", "berry"),
    ("🫐", "blueberry"),
    ("🍒", "cherry"),
    ("🍑", "peach"),
    ("🥭", "mango"),
    ("🍍", "pineapple"),
    ("🥥", "coconut"),
    ("🥝", "kiwi"),
    ("🥑", "avocado"),
    ("🌽", "corn"),
    ("🥕", "carrot"),
    ("🌰", "chestnut"),
    ("🌞", "sun"),
    ("🌙", "moon"),
    ("⭐", "star"),
    ("🌟", "glow"),
    ("☁️", "cloud"),
    ("🌈", "rainbow"),
    ("❄️", "snowflake"),
    ("🔥", "fire"),
    ("💧", "droplet"),
    ("🌊", "wave"),
    ("⛰️", "mountain"),
    ("🌋", "volcano"),
    ("🏝️", "island"),
    ("🧭", "compass"),
    ("⚓", "anchor"),
    ("🔔", "bell"),
    ("🎈", "balloon"),
    ("🪁", "kite"),
    ("🎐", "chime"),
    ("🧩", "puzzle"),
    ("🪐", "planet"),
    ("☄️", "comet"),
    ("🔭", "telescope"),
    ("🛡️", "shield"),
    ("🏮", "lantern"),
    ("🎲", "dice"),
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
    fn entries_are_well_formed_and_distinct() {
        let mut seen = HashSet::new();
        for w in ADJECTIVES.iter().chain(NOUNS) {
            assert!(word_ok(w), "{w}");
            assert!(seen.insert(*w), "{w} appears twice");
        }
        let mut emoji = HashSet::new();
        let mut tags = HashSet::new();
        for (e, t) in EMOJI {
            assert!(!e.is_empty() && !e.is_ascii(), "{e:?}");
            assert!(
                (2..=10).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_lowercase()),
                "{t}"
            );
            assert!(emoji.insert(*e), "{e} appears twice");
            assert!(tags.insert(*t), "{t} appears twice");
        }
    }
}
