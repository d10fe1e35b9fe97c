//! The convolution shapes of our nets and of AlexNet 2012 (facts of the layer
//! definitions in layer-defs/), used by the kernel goldens and `convnet bench kernels`.

/// One convolutional (or locally connected) layer's kernel arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvShape {
    /// `<net>-<layer>`, e.g. `18pct-conv2`.
    pub name: &'static str,
    /// `imgSize` (images are square).
    pub img_size: usize,
    /// `numImgColors` (channels).
    pub colors: usize,
    /// `numFilters`.
    pub filters: usize,
    /// `filterSize`.
    pub filter_size: usize,
    /// `padding`; the kernels' `paddingStart` is `-padding`.
    pub padding: usize,
    /// `moduleStride`.
    pub stride: usize,
    /// `numGroups`.
    pub groups: usize,
    /// `numModulesX` (= `numModulesY`).
    pub modules_x: usize,
    /// `partialSum` of the layer's weightActs (1 for local layers).
    pub partial_sum: usize,
    /// Locally connected (`local`) rather than convolutional (`conv`).
    pub local: bool,
    /// `numImages`: the minibatch size the nets train with.
    pub images: usize,
}

#[allow(clippy::too_many_arguments)]
const fn conv(
    name: &'static str,
    img_size: usize,
    colors: usize,
    filters: usize,
    filter_size: usize,
    padding: usize,
    stride: usize,
    modules_x: usize,
    partial_sum: usize,
) -> ConvShape {
    ConvShape {
        name,
        img_size,
        colors,
        filters,
        filter_size,
        padding,
        stride,
        groups: 1,
        modules_x,
        partial_sum,
        local: false,
        images: 128,
    }
}

/// The layers of cifar10-18pct (cifar10-80sec has the same three conv shapes),
/// cifar10-conv-local and AlexNet 2012 conv1-conv5 (one GPU's half; conv3 reads one of
/// its two inputs), with the nets' minibatch of 128 images.
pub const NET_SHAPES: &[ConvShape] = &[
    conv("18pct-conv1", 32, 3, 32, 5, 2, 1, 32, 4),
    conv("18pct-conv2", 16, 32, 32, 5, 2, 1, 16, 4),
    conv("18pct-conv3", 8, 32, 64, 5, 2, 1, 8, 4),
    conv("convlocal-conv1", 32, 3, 64, 5, 2, 1, 32, 4),
    conv("convlocal-conv2", 16, 64, 64, 5, 2, 1, 16, 8),
    ConvShape {
        local: true,
        ..conv("convlocal-local3", 8, 64, 64, 3, 1, 1, 8, 1)
    },
    ConvShape {
        local: true,
        ..conv("convlocal-local4", 8, 64, 32, 3, 1, 1, 8, 1)
    },
    conv("alexnet-conv1", 224, 3, 48, 11, 0, 4, 55, 5),
    conv("alexnet-conv2", 27, 48, 128, 5, 2, 1, 27, 3),
    conv("alexnet-conv3", 13, 128, 192, 3, 1, 1, 13, 13),
    conv("alexnet-conv4", 13, 192, 192, 3, 1, 1, 13, 13),
    conv("alexnet-conv5", 13, 192, 128, 3, 1, 1, 13, 13),
];

impl ConvShape {
    /// `paddingStart` (≤ 0).
    pub fn padding_start(&self) -> i32 {
        -(self.padding as i32)
    }
    /// `numModules`.
    pub fn modules(&self) -> usize {
        self.modules_x * self.modules_x
    }
    /// `numFilterColors` = colours per group.
    pub fn filter_colors(&self) -> usize {
        self.colors / self.groups
    }
    /// Rows of the filter matrix: `(numModules if local) * numFilterColors * filterPixels`.
    pub fn filter_rows(&self) -> usize {
        let per = self.filter_colors() * self.filter_size * self.filter_size;
        if self.local {
            per * self.modules()
        } else {
            per
        }
    }
    /// Rows of weightActs' target: the filter rows once per `partialSum` modules (all
    /// modules at once for `partialSum` 0; local layers: the filter rows as they are).
    pub fn weight_acts_rows(&self) -> usize {
        match (self.local, self.partial_sum) {
            (true, _) | (false, 0) => self.filter_rows(),
            (false, p) => self.filter_rows() * (self.modules() / p),
        }
    }
    /// Multiply-adds of one filterActs (= imgActs = weightActs) call.
    pub fn flops(&self) -> f64 {
        2.0 * (self.filters * self.modules() * self.images) as f64
            * (self.filter_colors() * self.filter_size * self.filter_size) as f64
    }
    /// The same layer with another minibatch size.
    pub fn with_images(self, images: usize) -> ConvShape {
        ConvShape { images, ..self }
    }
    /// Looks a net shape up by name.
    pub fn named(name: &str) -> Option<ConvShape> {
        NET_SHAPES.iter().copied().find(|s| s.name == name)
    }
}
